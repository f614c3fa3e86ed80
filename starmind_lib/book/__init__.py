"""The book: the build (:mod:`.build`), offline figures (:mod:`.figures`), the headless-Chromium check (:mod:`.browsercheck`)."""
