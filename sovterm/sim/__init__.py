"""Simulators of BTCPay Server and QuickBooks Online, for tests and `sovterm demo`. Never imported by production code."""
