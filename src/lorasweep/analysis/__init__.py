"""``lorasweep analyze``: the sweep report for runs trained elsewhere, from their predictions."""
