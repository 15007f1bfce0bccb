"""Statistics over per-example scores: paired and hierarchical bootstrap intervals."""
