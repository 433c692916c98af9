"""The shop: POS store, import and webhook, product categories, loyalty, suggestions,
the customer card."""
