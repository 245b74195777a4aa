"""HTTP 402 for machines: L402 macaroons and x402 (Lightning "exact") in front of pay links and priced paths."""
