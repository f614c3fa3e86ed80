"""Training: the loop (:mod:`.train`), the architecture grid as data (:mod:`.grid`), the resumable sweep (:mod:`.sweep`)."""
