"""Domain adaptation by a gradient reversal layer (the tri-training paper's Adv.whole and
Adv.time)."""
