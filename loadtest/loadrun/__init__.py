"""One command for a load-test run: the estate in its performance configuration, k6, sampling, report."""
