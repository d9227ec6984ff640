"""Plain typed functions: all science and all validation. Never imports Nipype."""
