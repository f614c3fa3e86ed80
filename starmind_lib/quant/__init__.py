"""Quantisation: the schemes (:mod:`.schemes`), the integer reference engine (:mod:`.intengine`), the `.smd`
device file (:mod:`.smd`, imports no quantisation code), reference models (:mod:`.reference`) and the
chapter-05 stage (:mod:`.stage`)."""
