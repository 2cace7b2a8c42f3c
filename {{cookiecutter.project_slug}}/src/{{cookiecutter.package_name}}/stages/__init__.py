"""One module per pipeline stage.  Each exposes ``run(runtime, context) -> StageOutput``; stages
never import each other: what two stages share lives in ``ml/``, ``data/`` or below."""
