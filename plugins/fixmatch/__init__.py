"""FixMatch and FMUC (FixMatch with MC-dropout uncertainty, the uncertainty paper) and the
paper's CNN420."""
