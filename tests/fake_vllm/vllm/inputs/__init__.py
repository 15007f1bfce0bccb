def TokensPrompt(prompt_token_ids):  # noqa: N802  (vllm's name)
    return {"prompt_token_ids": list(prompt_token_ids)}
