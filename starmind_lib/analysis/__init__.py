"""Analysis: result tables and joins (:mod:`.tables`), Pareto fronts and recommendations (:mod:`.pareto`),
the claims audit (:mod:`.audit`, claims in :mod:`.claims_size_speed`, :mod:`.claims_design`, :mod:`.claims_runtime`)."""
