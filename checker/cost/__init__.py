"""Cost stage: what a probe's usage cost and whether its reported token count is honest.

`prices` (PriceBook, month projection; time always passed in), `counting` (pure token
arithmetic and the mismatch verdict), `tokens` (loads tokenizer files, counts text).
"""

__all__ = ["counting", "prices", "tokens"]
