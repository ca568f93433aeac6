"""A sequence as a flow diagram: where it is entered, its steps (emails, waits,
branches), its end, its goal and its early exits as nodes; where each step leads as
edges, labelled with the branch conditions and wait outcomes; and where each goes on a
page, laid out in layers from top to bottom. Pure: the console draws it as SVG and
writes the counts in (docs/console-sequences.md).

The layout is a small Sugiyama-style one: loops are broken by turning the edges that
go back up into "back edges" (drawn on the right), each node goes one layer below the
lowest node that leads to it, an edge that skips layers passes through a point in each
of them (so it never crosses a node), the order inside each layer is improved by the
barycentre heuristic, and each node is then pulled over the nodes it is linked to.
Text sizes are estimates (no font is measured here): lines are wrapped and cut to the
node's width with a margin.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise

from nurture.core.sequences import (
    END,
    STAGES,
    BranchStep,
    Sequence,
    SplitStep,
    WaitStep,
)
from nurture.core.wording import (
    audience_lines,
    condition_text,
    either,
    reentry_text,
    step_kind,
    step_lines,
    trigger_text,
)

# The nodes that are not steps. Step ids are made of a-z, 0-9, "_", "-" and "?", so
# none can be one of these.
ENTRY = "(entry)"
FINISH = "(end)"
GOAL = "(goal)"
EXIT = "(exit)"

NODE_WIDTH = 264
PAD = 12
TITLE_HEIGHT = 20
LINE_HEIGHT = 16
FIGURES_HEIGHT = 24  # the line the counts are written on, under a rule
CHAR_WIDTH = 6.6  # px per character at the nodes' 12px: a little generous, text stays inside
LABEL_CHAR_WIDTH = 6.4  # at the labels' 11px
LABEL_MAX_WIDTH = 216
LABEL_ROW = 30  # a label and its count, under it
MARGIN = 24
NODE_GAP = 44  # between two nodes of a layer
POINT_WIDTH = 12  # an edge passing through a layer
POINT_GAP = 16
CURVE = 34  # the vertical room an edge bends in, between two layers
LANE = 26  # between the lanes of edges going back up, right of the nodes
SIDE_GAP = 56  # between the diagram and the goal and exit column
CHARS = int((NODE_WIDTH - 2 * PAD) / CHAR_WIDTH)
MAX_WRAPPED = 3  # lines one text may take in a node, the last one cut


# --- the values the console draws ------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """One line of text at its baseline; `role` is its class (title, detail, figures)."""

    x: float
    y: float
    text: str
    role: str


@dataclass(frozen=True)
class Node:
    key: str  # a step id, or ENTRY, FINISH, GOAL, EXIT
    kind: str  # entry | email | wait | branch | split | end | goal | exit
    title: str
    lines: tuple[str, ...]  # what the node says, wrapped to its width
    x: float  # left
    y: float  # top
    width: float
    height: float
    texts: tuple[Text, ...] = ()
    figures_at: tuple[float, float] = (0.0, 0.0)  # where the counts' line begins
    rule_y: float = 0.0  # the rule above the counts

    @property
    def is_step(self) -> bool:
        return self.kind in ("email", "wait", "branch", "split")

    @property
    def dom_id(self) -> str:
        """An id for the page: `flow-step-<id>` for a step, `flow-entry` and so on."""
        return f"flow-step-{self.key}" if self.is_step else f"flow-{self.kind}"


@dataclass(frozen=True)
class Edge:
    """From `source` to `target` (node keys); `label` says when (None: always).

    `path` is SVG path data; the label, when there is one, is centred on
    (`label_x`, `label_y`) (`anchor` "middle"), or begins there ("start")."""

    source: str
    target: str
    label: str | None
    path: str
    back: bool = False  # goes back up (a loop through a wait)
    shown: str | None = None  # the label as it fits
    label_x: float = 0.0
    label_y: float = 0.0
    label_width: float = 0.0
    anchor: str = "middle"


@dataclass(frozen=True)
class Flow:
    sequence_id: str
    version: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: float
    height: float
    step_ids: tuple[str, ...] = ()  # in file order

    def node(self, key: str) -> Node:
        for found in self.nodes:
            if found.key == key:
                return found
        raise KeyError(key)


# --- nodes and edges, before the layout --------------------------------------------------


@dataclass
class _Draft:
    key: str
    kind: str
    title: str
    lines: tuple[str, ...]

    @property
    def height(self) -> float:
        return PAD + TITLE_HEIGHT + len(self.lines) * LINE_HEIGHT + FIGURES_HEIGHT + PAD


@dataclass
class _Link:
    source: str
    target: str
    labels: list[str] = field(default_factory=list)

    @property
    def label(self) -> str | None:
        return " / ".join(self.labels) if self.labels else None


def wrap(lines: Iterable[str], chars: int = CHARS) -> tuple[str, ...]:
    """Each line wrapped to `chars`, on at most MAX_WRAPPED lines (the last one cut)."""
    out: list[str] = []
    for line in lines:
        parts = textwrap.wrap(line, chars) or [""]
        if len(parts) > MAX_WRAPPED:
            parts = [*parts[: MAX_WRAPPED - 1], fit(" ".join(parts[MAX_WRAPPED - 1 :]), chars)]
        out.extend(parts)
    return tuple(out)


def fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)].rstrip() + "…"


def _drafts(sequence: Sequence) -> list[_Draft]:
    entry = [trigger_text(t) for t in sequence.triggers] or ["no trigger"]
    audience = audience_lines(sequence.audience)
    entry += audience or ["anyone"]
    entry.append(reentry_text(sequence.reentry))
    if not sequence.enabled:
        entry.append("disabled: nobody enters")
    drafts = [_Draft(ENTRY, "entry", "Entry", wrap(entry))]
    titles = {"email": "Email", "wait": "Wait", "branch": "Branch", "split": "Split"}
    for step in sequence.steps:
        kind = step_kind(step)
        drafts.append(_Draft(step.id, kind, f"{titles[kind]} · {step.id}", wrap(step_lines(step))))
    return drafts


def _links(sequence: Sequence) -> list[_Link]:
    """Where each node leads; two ways to the same step make one edge with both labels."""
    found: dict[tuple[str, str], _Link] = {}

    def link(source: str, target: str, label: str | None = None) -> None:
        key = (source, FINISH if target == END else target)
        made = found.setdefault(key, _Link(*key))
        if label is not None and label not in made.labels:
            made.labels.append(label)

    link(ENTRY, sequence.first_step)
    for step in sequence.steps:
        match step:
            case BranchStep():
                for rule in step.rules:
                    link(step.id, rule.goto, f"if {condition_text(rule.condition)}")
                link(step.id, step.otherwise, "else")
            case SplitStep():
                for variant in step.variants:
                    link(step.id, step.target_of(variant.name), f"variant {variant.name}")
                if step.holdout:
                    link(step.id, step.next, "holdout")
            case WaitStep() if step.until_event is not None and step.timeout is None:
                link(step.id, step.on_event or step.next, f"on {step.until_event}")
            case WaitStep() if step.until_event is not None and step.on_event in (None, step.next):
                link(step.id, step.next, f"on {step.until_event} or after {step.timeout}")
            case WaitStep() if step.until_event is not None:
                link(step.id, step.on_event or step.next, f"on {step.until_event}")
                link(step.id, step.next, f"none within {step.timeout}")
            case _:
                link(step.id, step.next)
    return list(found.values())


# --- the layout ------------------------------------------------------------------------------


def layout(sequence: Sequence) -> Flow:
    """The sequence's flow diagram, laid out from top to bottom."""
    drafts = {d.key: d for d in _drafts(sequence)}
    links = _links(sequence)
    if any(link.target == FINISH for link in links):
        drafts[FINISH] = _Draft(FINISH, "end", "End", ("the sequence is completed",))
    order = list(drafts)
    successors: dict[str, list[str]] = {key: [] for key in order}
    for link in links:
        successors[link.source].append(link.target)
    back = _back_links(order, successors)
    forward = [link for link in links if (link.source, link.target) not in back]
    layer = _layers(order, forward)
    rows, chains = _rows(order, layer, forward)
    _order(rows, chains)
    widths = {key: NODE_WIDTH if key in drafts else POINT_WIDTH for row in rows for key in row}
    x = _columns(rows, chains, widths)
    return _place(sequence, drafts, links, back, rows, chains, x, widths)


def _back_links(order: list[str], successors: Mapping[str, list[str]]) -> set[tuple[str, str]]:
    """The links that close a loop, found by a depth-first walk from the entry (then
    from any node not reached, in file order)."""
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done
    back: set[tuple[str, str]] = set()
    for start in order:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(successors[start]))]
        while stack:
            node, pending = stack[-1]
            following = next(pending, None)
            if following is None:
                state[node] = 2
                stack.pop()
            elif state.get(following) == 1:
                back.add((node, following))
            elif following not in state:
                state[following] = 1
                stack.append((following, iter(successors[following])))
    return back


def _layers(order: list[str], forward: list[_Link]) -> dict[str, int]:
    """Each node one layer below the lowest node leading to it (longest path); a step
    nothing leads to (one no longer reached) starts one layer below the entry."""
    incoming: dict[str, list[str]] = {key: [] for key in order}
    for link in forward:
        incoming[link.target].append(link.source)
    layer: dict[str, int] = {}
    pending = list(order)
    while pending:  # the forward links make no loop: each pass places at least one node
        waiting = []
        for key in pending:
            if all(source in layer for source in incoming[key]):
                first = 0 if key == ENTRY else 1
                layer[key] = max((layer[s] + 1 for s in incoming[key]), default=first)
            else:
                waiting.append(key)
        if len(waiting) == len(pending):  # pragma: no cover - only a loop could do this
            raise AssertionError(f"a loop is left among {waiting}")
        pending = waiting
    return layer


def _rows(
    order: list[str], layer: Mapping[str, int], forward: list[_Link]
) -> tuple[list[list[str]], dict[tuple[str, str], list[str]]]:
    """The nodes of each layer, and for each link the points it passes through: its
    source, one point in each layer it skips, its target."""
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for key in order:
        rows[layer[key]].append(key)
    chains: dict[tuple[str, str], list[str]] = {}
    for link in forward:
        chain = [link.source]
        for between in range(layer[link.source] + 1, layer[link.target]):
            point = f"{link.source}→{link.target}#{between}"
            rows[between].append(point)
            chain.append(point)
        chain.append(link.target)
        chains[(link.source, link.target)] = chain
    return rows, chains


def _neighbours(
    chains: Mapping[tuple[str, str], list[str]],
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    above: dict[str, list[str]] = {}
    below: dict[str, list[str]] = {}
    for chain in chains.values():
        for upper, lower in pairwise(chain):
            below.setdefault(upper, []).append(lower)
            above.setdefault(lower, []).append(upper)
    return above, below


def _crossings(rows: list[list[str]], below: Mapping[str, list[str]]) -> int:
    total = 0
    for upper, lower in pairwise(rows):
        where = {key: i for i, key in enumerate(lower)}
        pairs = [(i, where[t]) for i, key in enumerate(upper) for t in below.get(key, ())]
        for a, (i, j) in enumerate(pairs):
            total += sum(1 for k, m in pairs[a + 1 :] if (i - k) * (j - m) < 0)
    return total


def _order(rows: list[list[str]], chains: Mapping[tuple[str, str], list[str]]) -> None:
    """Reorder each layer (in place) by the barycentre of its neighbours, sweeping down
    and up; keep the order with the fewest crossings."""
    above, below = _neighbours(chains)
    best = [list(row) for row in rows]
    fewest = _crossings(rows, below)
    for sweep in range(8):
        downwards = sweep % 2 == 0
        indices = range(1, len(rows)) if downwards else range(len(rows) - 2, -1, -1)
        for index in indices:
            near = rows[index - 1] if downwards else rows[index + 1]
            rows[index] = _by_barycentre(rows[index], near, above if downwards else below)
        found = _crossings(rows, below)
        if found < fewest:
            best, fewest = [list(row) for row in rows], found
    rows[:] = best


def _by_barycentre(row: list[str], near: list[str], linked: Mapping[str, list[str]]) -> list[str]:
    position = {key: i for i, key in enumerate(near)}
    centres = []
    for i, key in enumerate(row):
        seen = [position[k] for k in linked.get(key, ()) if k in position]
        centres.append((sum(seen) / len(seen) if seen else float(i), i, key))
    return [key for _, _, key in sorted(centres)]


def _columns(
    rows: list[list[str]],
    chains: Mapping[tuple[str, str], list[str]],
    widths: Mapping[str, float],
) -> dict[str, float]:
    """Each node's centre: pulled over its neighbours, sweep after sweep, without two
    nodes of a layer overlapping or changing places."""
    above, below = _neighbours(chains)
    both = {key: [*above.get(key, ()), *below.get(key, ())] for key in widths}
    x: dict[str, float] = {}
    for row in rows:
        left = 0.0
        for i, key in enumerate(row):
            if i:
                left += _gap(row[i - 1], key, widths)
            x[key] = left + widths[key] / 2
            left += widths[key]
    for sweep in range(12):
        if 8 <= sweep < 11:  # balance what is above and below; the last sweep goes down
            indices, linked = range(len(rows)), both
        elif sweep % 2 == 0:
            indices, linked = range(1, len(rows)), above
        else:
            indices, linked = range(len(rows) - 2, -1, -1), below
        for index in indices:
            row = rows[index]
            wanted = []
            for key in row:
                seen = [x[k] for k in linked.get(key, ())]
                wanted.append(sum(seen) / len(seen) if seen else x[key])
            _spread(row, wanted, widths, x)
    left = min((x[key] - widths[key] / 2 for row in rows for key in row), default=0.0)
    return {key: round(value - left + MARGIN) for key, value in x.items()}


def _gap(left: str, right: str, widths: Mapping[str, float]) -> float:
    points = widths[left] == POINT_WIDTH or widths[right] == POINT_WIDTH
    return POINT_GAP if points else NODE_GAP


def _spread(
    row: list[str], wanted: list[float], widths: Mapping[str, float], x: dict[str, float]
) -> None:
    """The centres closest to `wanted` that keep the row's order and gaps: the mean of
    the tightest packing pushing right and the one pushing left (both keep the gaps,
    so their mean does)."""
    count = len(row)
    need = [
        (widths[row[i]] + widths[row[i + 1]]) / 2 + _gap(row[i], row[i + 1], widths)
        for i in range(count - 1)
    ]
    right = list(wanted)
    for i in range(1, count):
        right[i] = max(wanted[i], right[i - 1] + need[i - 1])
    left = list(wanted)
    for i in range(count - 2, -1, -1):
        left[i] = min(wanted[i], left[i + 1] - need[i])
    for i, key in enumerate(row):
        x[key] = (left[i] + right[i]) / 2


@dataclass(frozen=True)
class _Label:
    x: float  # centre
    y: float  # baseline
    width: float
    text: str


@dataclass
class _Grid:
    """Where the layers went: each one's top and bottom, where the links leaving it
    begin to bend (under their labels), and the labels."""

    tops: list[float] = field(default_factory=list)
    bottoms: list[float] = field(default_factory=list)
    bends: list[float] = field(default_factory=list)
    labels: dict[tuple[str, str], _Label] = field(default_factory=dict)


def _place(
    sequence: Sequence,
    drafts: Mapping[str, _Draft],
    links: list[_Link],
    back: set[tuple[str, str]],
    rows: list[list[str]],
    chains: Mapping[tuple[str, str], list[str]],
    x: Mapping[str, float],
    widths: Mapping[str, float],
) -> Flow:
    by_pair = {(link.source, link.target): link for link in links}
    ports = _ports(chains, x)
    grid = _grid(drafts, by_pair, rows, chains, ports)
    layer_of = {key: i for i, row in enumerate(rows) for key in row}
    nodes = {
        key: _node(draft, x[key] - NODE_WIDTH / 2, grid.tops[layer_of[key]])
        for key, draft in drafts.items()
    }
    edges = [
        _forward(by_pair[pair], chain, ports[pair], nodes, grid, layer_of, x, drafts)
        for pair, chain in chains.items()
    ]
    right = max((x[key] + widths[key] / 2 for row in rows for key in row), default=0.0)
    for pair in sorted(back, key=lambda p: (layer_of[p[0]], p)):
        edges.append(_backwards(by_pair[pair], nodes, right))
        label = edges[-1].label_width + 10 if edges[-1].shown else 0.0
        right = edges[-1].label_x - 6 + label
    side = _side(sequence)
    y = grid.tops[1] if len(grid.tops) > 1 else float(MARGIN)
    for draft in side:
        nodes[draft.key] = _node(draft, right + SIDE_GAP, y)
        y += draft.height + 20
    return Flow(
        sequence.id,
        sequence.version,
        tuple(nodes.values()),
        tuple(edges),
        round(max(max(n.x + n.width for n in nodes.values()), right) + MARGIN),
        round(max(n.y + n.height for n in nodes.values()) + MARGIN),
        tuple(step.id for step in sequence.steps),
    )


def _ports(
    chains: Mapping[tuple[str, str], list[str]], x: Mapping[str, float]
) -> dict[tuple[str, str], float]:
    """Where each forward link leaves its source: spread along the bottom, in the
    order of where they go."""
    leaving: dict[str, list[tuple[str, str]]] = {}
    for pair in chains:
        leaving.setdefault(pair[0], []).append(pair)
    ports: dict[tuple[str, str], float] = {}
    for key, pairs in leaving.items():
        pairs.sort(key=lambda pair: x[chains[pair][1]])
        for i, pair in enumerate(pairs):
            share = 0.5 if len(pairs) == 1 else 0.2 + 0.6 * i / (len(pairs) - 1)
            ports[pair] = x[key] - NODE_WIDTH / 2 + NODE_WIDTH * share
    return ports


def _grid(
    drafts: Mapping[str, _Draft],
    by_pair: Mapping[tuple[str, str], _Link],
    rows: list[list[str]],
    chains: Mapping[tuple[str, str], list[str]],
    ports: Mapping[tuple[str, str], float],
) -> _Grid:
    """Layer by layer, top to bottom: the labels of the links leaving a layer take rows
    under it, a new row wherever two would overlap."""
    chars = int((LABEL_MAX_WIDTH - 12) / LABEL_CHAR_WIDTH)
    grid = _Grid()
    y = float(MARGIN)
    for row in rows:
        grid.tops.append(y)
        height = max((drafts[key].height for key in row if key in drafts), default=0.0)
        grid.bottoms.append(y + height)
        leaving = set(row)
        labelled = sorted((ports[p], p) for p in chains if p[0] in leaving and by_pair[p].label)
        taken: list[list[tuple[float, float]]] = []
        for port, pair in labelled:
            text = fit(by_pair[pair].label or "", chars)
            width = _label_width(text)
            span = (port - width / 2 - 6, port + width / 2 + 6)
            free = (n for n, spans in enumerate(taken) if all(_apart(span, s) for s in spans))
            number = next(free, len(taken))
            if number == len(taken):
                taken.append([])
            taken[number].append(span)
            baseline = y + height + 14 + number * LABEL_ROW
            grid.labels[pair] = _Label(port, baseline, width, text)
        grid.bends.append(y + height + len(taken) * LABEL_ROW + (6 if taken else 0))
        y = grid.bends[-1] + CURVE + 8
    return grid


def _apart(one: tuple[float, float], other: tuple[float, float]) -> bool:
    return one[1] <= other[0] or one[0] >= other[1]


def _label_width(text: str) -> float:
    return min(len(text) * LABEL_CHAR_WIDTH + 12, LABEL_MAX_WIDTH)


def _forward(
    link: _Link,
    chain: list[str],
    port: float,
    nodes: Mapping[str, Node],
    grid: _Grid,
    layer_of: Mapping[str, int],
    x: Mapping[str, float],
    drafts: Mapping[str, _Draft],
) -> Edge:
    """Straight down from the port through the label rows, then a curve to the next
    layer, through each layer the link skips, to the top of the target."""
    source = nodes[link.source]
    d = [f"M {port:.1f} {source.y + source.height:.1f}"]
    here = port
    for upper, lower in pairwise(chain):
        bend, top, there = grid.bends[layer_of[upper]], grid.tops[layer_of[lower]], x[lower]
        middle = (bend + top) / 2
        d.append(f"V {bend:.1f} C {here:.1f} {middle:.1f} {there:.1f} {middle:.1f}")
        d.append(f"{there:.1f} {top:.1f}")
        if lower not in drafts:  # a point the link passes through: straight down
            d.append(f"V {grid.bottoms[layer_of[lower]]:.1f}")
        here = there
    label = grid.labels.get((link.source, link.target))
    if label is None:
        return Edge(link.source, link.target, link.label, " ".join(d))
    return Edge(link.source, link.target, link.label, " ".join(d), shown=label.text,
                label_x=label.x, label_y=label.y, label_width=label.width)  # fmt: skip


def _backwards(link: _Link, nodes: Mapping[str, Node], right: float) -> Edge:
    """Out of the source's right side, up a lane right of everything drawn so far,
    into the target's right side."""
    source, target = nodes[link.source], nodes[link.target]
    lane = right + LANE
    start, end = source.y + source.height * 0.35, target.y + target.height * 0.65
    path = (
        f"M {source.x + source.width:.1f} {start:.1f} H {lane:.1f} V {end:.1f}"
        f" H {target.x + target.width:.1f}"
    )
    text = fit(link.label, int((LABEL_MAX_WIDTH - 12) / LABEL_CHAR_WIDTH)) if link.label else None
    return Edge(link.source, link.target, link.label, path, back=True, shown=text,
                label_x=lane + 6, label_y=(start + end) / 2,
                label_width=_label_width(text) if text else 0.0, anchor="start")  # fmt: skip


def _side(sequence: Sequence) -> list[_Draft]:
    """The goal and the early exits: reached from any step, so drawn apart."""
    drafts = []
    if sequence.exit.events:
        events = sorted(sequence.exit.events)
        drafts.append(_Draft(GOAL, "goal", "Goal reached", wrap(
            [f"on {either(events)}", "from any step"]
        )))  # fmt: skip
    stages = [s for s in STAGES if s in sequence.exit.stages | {"disqualified"}]
    lines = [f"stage {either(stages)}", "unsubscribed, bounced, no consent…", "from any step"]
    drafts.append(_Draft(EXIT, "exit", "Left early", wrap(lines)))
    return drafts


def _node(draft: _Draft, left: float, top: float) -> Node:
    texts = [Text(left + PAD, top + PAD + 14, fit(draft.title, CHARS - 2), "title")]
    baseline = top + PAD + TITLE_HEIGHT
    for line in draft.lines:
        baseline += LINE_HEIGHT
        texts.append(Text(left + PAD, baseline - 3, line, "detail"))
    height = draft.height
    rule = top + height - PAD - FIGURES_HEIGHT + 4
    return Node(
        draft.key,
        draft.kind,
        draft.title,
        draft.lines,
        left,
        top,
        NODE_WIDTH,
        height,
        tuple(texts),
        (left + PAD, top + height - PAD - 2),
        rule,
    )
