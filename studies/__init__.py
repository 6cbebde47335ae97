"""One-off measurements behind a finding told in the docs (studies/README.md); not the suite."""
