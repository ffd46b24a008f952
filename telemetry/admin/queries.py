"""Admin for query intelligence: fingerprint statistics, findings, reports."""
