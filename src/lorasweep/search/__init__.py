"""Search the baseline's fields with Optuna's samplers, the run store as the only state.

``space`` turns the config's ``search.space`` into Optuna distributions and back into config
values; ``samplers`` names the samplers a config can choose; ``study`` asks and tells, batch by
batch, replaying the store's answers so that a resumed search reaches the same trials.
"""
