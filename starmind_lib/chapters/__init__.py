"""Chapter glue: one module per chapter, the functions its notebook calls (tables, figures, prose numbers)."""
