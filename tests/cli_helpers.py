"""Assertions shared by the command-line tests."""


def assert_one_line_error(code, err, *needles):
    """Exit status 1 and exactly one `error: ...` line naming each needle, no traceback."""
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
