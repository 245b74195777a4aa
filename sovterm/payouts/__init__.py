"""payouts"""
