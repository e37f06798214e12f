"""The built-in dialects, one package each (see `gateway.adapter` for the contract)."""
