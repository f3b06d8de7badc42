"""Progress bars of the evaluation verbs (tqdm, on stderr; ``--no-progress`` turns them off): one in frames or
steps per stage (:func:`progress_bar`), and one in control steps over several closed-loop episodes
(:class:`StepBar`, advanced by a :func:`~drive.eval.rollout.run_episode` observer)."""

from __future__ import annotations

from typing import Any, Callable


def progress_bar(total: int | None, desc: str, unit: str = "frame", enabled: bool = True) -> Any:
    """A tqdm bar of ``total`` ``unit``s that disappears when closed (``leave=False``); a no-op when not ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True)


class StepBar:
    """A bar in control steps over ``episodes`` episodes of ``per_episode`` planned steps each: :meth:`observer`
    is a rollout observer that advances it by one per step (the episode in the postfix), :meth:`episode_done`
    moves it to the episode's end (an episode that ended early counts whole)."""

    def __init__(self, per_episode: int, episodes: int, desc: str, enabled: bool = True):
        self.per_episode, self.episodes = per_episode, episodes
        self.bar = progress_bar(per_episode * episodes, desc, "step", enabled)

    def observer(self, episode: int) -> Callable[[Any], None]:
        if self.episodes > 1:
            self.bar.set_postfix_str(f"episode {episode + 1}/{self.episodes}")
        return lambda step: self.bar.update()

    def episode_done(self, episode: int) -> None:
        if not self.bar.disable:
            self.bar.update(max(0, self.per_episode * (episode + 1) - self.bar.n))

    def close(self) -> None:
        self.bar.close()
