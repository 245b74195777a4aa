"""Trusted Cashu mints: what the operator trusts, and what each mint's public, read-only endpoints say
about its health (NUT-06 `/v1/info`, NUT-02 `/v1/keysets`). Never a quote, never funds moved."""
