"""Pure helpers of the rules core (``assessor.rules`` is the facade): no I/O, no clock."""
