"""API baselines: external chat models asked the sweep's prompts, cached, scored, paired.

``client`` speaks the chat-completions protocol (with retries), ``cache`` keeps every reply
under the sweep folder, ``run`` asks a baseline every evaluation example and writes its row,
``rows`` reads the rows back for the report.
"""
