"""Progress bars: live on a terminal, a line a minute where every update is a new line."""

import io

from gsgen import progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_bars_are_throttled_where_stderr_is_not_a_terminal(monkeypatch):
  monkeypatch.setattr("sys.stderr", io.StringIO())
  quiet = progress.bar(range(3), file=io.StringIO())
  assert quiet.mininterval == progress.QUIET_INTERVAL_SECONDS
  monkeypatch.setattr("sys.stderr", _Terminal())
  live = progress.bar(range(3), file=io.StringIO())
  assert live.mininterval < 1
  quiet.close()
  live.close()
