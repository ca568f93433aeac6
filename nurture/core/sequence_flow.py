"""Where a sequence's steps lead: every step reachable, no email on a cycle, no cycle
without a wait (it would spin within one tick)."""

from __future__ import annotations

from collections.abc import Mapping

from nurture.core.sequences import BranchStep, EmailStep, SplitStep, Step, WaitStep
from nurture.core.yamlsource import Reader, at


def _successors(step: Step) -> list[str]:
    if isinstance(step, BranchStep):
        return [rule.goto for rule in step.rules] + [step.otherwise]
    if isinstance(step, SplitStep):
        gotos = [v.goto for v in step.variants if v.goto is not None]
        return [*dict.fromkeys([*gotos, step.next])]
    if isinstance(step, WaitStep) and step.on_event is not None:
        return [step.next, step.on_event]
    return [step.next]


def check_flow(reader: Reader, steps: tuple[Step, ...]) -> None:
    by_id = {step.id: step for step in steps}
    where = {step.id: at("steps", index) for index, step in enumerate(steps, start=1)}
    edges = {step.id: [t for t in _successors(step) if t in by_id] for step in steps}

    reached = _reachable(edges, steps[0].id) | {steps[0].id}
    for step in steps:
        if step.id not in reached:
            reader.problem(
                step.line,
                where[step.id],
                f'step "{step.id}" can never be reached: no next, goto, then or else leads to it',
            )

    for component in _cycles(edges, [step.id for step in steps]):
        for step_id in component:
            step = by_id[step_id]
            if isinstance(step, EmailStep) or (isinstance(step, SplitStep) and step.email):
                loop = " -> ".join(_cycle_path(edges, step_id, component))
                reader.problem(
                    by_id[step_id].line,
                    where[step_id],
                    f'email step "{step_id}" is on a cycle ({loop});'
                    " an email is sent at most once per enrollment",
                )

    # A loop with no wait would spin forever in one tick: look for cycles once
    # the wait steps are taken out of the graph.
    moving = {
        step_id: [t for t in targets if not isinstance(by_id[t], WaitStep)]
        for step_id, targets in edges.items()
        if not isinstance(by_id[step_id], WaitStep)
    }
    for component in _cycles(moving, [step.id for step in steps if step.id in moving]):
        start = component[0]
        loop = " -> ".join(_cycle_path(moving, start, component))
        reader.problem(by_id[start].line, where[start], f"cycle without a wait: {loop}")


def _reachable(edges: Mapping[str, list[str]], start: str) -> set[str]:
    """Steps reachable from `start` through at least one edge."""
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        step_id = todo.pop()
        if step_id not in seen:
            seen.add(step_id)
            todo.extend(edges.get(step_id, ()))
    return seen


def _cycles(edges: Mapping[str, list[str]], order: list[str]) -> list[list[str]]:
    """The groups of steps that reach each other (each holds a cycle), in file order."""
    reach = {step_id: _reachable(edges, step_id) for step_id in order}
    groups: list[list[str]] = []
    placed: set[str] = set()
    for step_id in order:
        if step_id in placed or step_id not in reach[step_id]:
            continue
        group = [other for other in order if other in reach[step_id] and step_id in reach[other]]
        placed.update(group)
        groups.append(group)
    return groups


def _cycle_path(edges: Mapping[str, list[str]], start: str, group: list[str]) -> list[str]:
    """A shortest cycle from `start` back to itself within `group`, as a list of ids."""
    members = set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for step_id in frontier:
            for target in edges.get(step_id, ()):
                if target == start:
                    path = [step_id]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target in members and target not in came_from:
                    came_from[target] = step_id
                    following.append(target)
        frontier = following
    return [start, start]  # pragma: no cover - a group always holds a cycle
