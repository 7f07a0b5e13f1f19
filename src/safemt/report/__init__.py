"""safemt.report: tables, paper numbers, provenance and the HTML report."""
