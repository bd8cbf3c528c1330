"""Assertions shared by the command-line tests."""


def assert_one_line_error(code, err, *needles):
    """Exit status 1 and exactly one `error: ...` line naming each needle, no traceback."""
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def with_widths(train, small):
    """``engine.train.train`` building ``small``'s widths (the CLI has no width flags) while keeping
    the recipe fields the CLI's variant flags pass in ``model_config``."""
    import dataclasses

    from engine.config import ModelConfig

    def train_small(*args, model_config=ModelConfig(), **kwargs):
        widths = {f: getattr(small, f) for f in ("conv_channels", "dense_units", "conv5_channels")}
        return train(*args, model_config=dataclasses.replace(model_config, **widths), **kwargs)
    return train_small
