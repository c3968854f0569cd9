"""Small helpers shared by vaelib's modules."""


def one_line(text, limit: int | None = None) -> str:
    """``text`` with all whitespace runs (newlines included) collapsed to single spaces, cut to ``limit`` chars."""
    line = " ".join(str(text).split())
    if limit is not None and len(line) > limit:
        line = line[: limit - 3] + "..."
    return line
