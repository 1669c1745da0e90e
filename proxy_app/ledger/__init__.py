"""The accounting: limits admission, counters, the usage record, prices, roll-up and reports."""
