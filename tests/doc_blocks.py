"""The code blocks of README.md and docs/*.rst, and the runner that executes one page.

Extraction (:func:`extract`) finds, in document order:

* reStructuredText ``.. code-block:: LANG``, ``.. code:: LANG`` and ``.. sourcecode:: LANG``
  directives, and ``::`` literal blocks, which count as Python when they parse as Python and
  do something (an import, a definition, an assignment or a call): a folder tree or an error
  message shown after ``::`` is not code;
* Markdown fences, ```` ```LANG ````.

A Python block that starts with ``>>>`` (or a ``pycon`` block) is a doctest: its outputs are
compared. A ``console`` block is a list of ``$ COMMAND`` lines (``\\`` continues a line), each
followed by the output it shows.

Markers, which the runner honours and reports:

* ``.. doc-test: skip (REASON)`` (an RST comment, not rendered) or
  ``<!-- doc-test: skip (REASON) -->`` (Markdown) on the lines just before a block, or a
  ``# doc-test: skip (REASON)`` line inside it, skips the whole block;
* a statement or command whose comment says ``needs CUDA`` runs only where CUDA is
  available; one whose comment says ``needs internet`` never runs.

Run as ``python doc_blocks.py PAGE REPORT [ROOT]`` (in the working folder the page
expects), this module executes the page: its Python blocks and console commands in
document order, the Python blocks in one namespace (doctests compared). ``lenet5``
commands run in this process through :func:`lenet5.cli.main`, the program the ``lenet5``
script starts (a shell when they need one, or are interrupted with Ctrl-C); ``export`` sets
the environment of what follows and ``echo $?`` is compared with the last exit code.
:func:`plan` says which commands have their shown output compared, which only their exit
code, and which are not run. A JSON report of every block and command goes to ``REPORT``.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import io
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import tokenize
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_DIRECTIVE = re.compile(
    r"^(?P<indent>\s*)\.\. (?:code-block|code|sourcecode)::\s*(?P<lang>\S*)\s*$"
)
_RST_MARKER = re.compile(r"^\s*\.\. doc-test: skip \((?P<reason>.+)\)\s*$")
_MD_MARKER = re.compile(r"^\s*<!-- doc-test: skip \((?P<reason>.+)\) -->\s*$")
_IN_BLOCK_MARKER = re.compile(r"^\s*# doc-test: skip \((?P<reason>.+)\)\s*$", re.MULTILINE)
_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
_NEEDS = re.compile(r"#.*\bneeds (?P<what>CUDA|internet)\b")
_HOLD_OUT = re.compile(r"(?:val_split=|--val-split |\.split\()(\d+)")


def held_out(code: str, limit: int = 60000) -> int:
    """The most training images that ``code`` holds out for validation (``val_split=N``,
    ``--val-split N``, ``.split(N)``), leaving out any of ``limit`` or more (error examples)."""
    return max([0, *(n for n in map(int, _HOLD_OUT.findall(code)) if n < limit)])


#: Languages whose blocks are Python code to run.
PYTHON = {"python", "python3", "py", "pycon"}


@dataclass(frozen=True)
class Block:
    """One code block of a page."""

    page: str
    #: The 1-based line, in the page, of the block's first line of code.
    line: int
    language: str
    code: str
    #: Why the whole block is skipped (a marker), or ``None``.
    skip: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON

    @property
    def is_doctest(self) -> bool:
        return self.language == "pycon" or self.code.lstrip().startswith(">>>")


@dataclass(frozen=True)
class Command:
    """One ``$ COMMAND`` of a console block, with the output the page shows for it."""

    #: The 1-based line of the ``$`` in the page.
    line: int
    text: str
    output: str


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _marker_before(lines: list[str], index: int, pattern: re.Pattern[str]) -> str | None:
    """The reason of a skip marker on the lines just before ``lines[index]``, if any."""
    i = index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    if i >= 0 and (match := pattern.match(lines[i])):
        return match["reason"]
    return None


def _body(lines: list[str], start: int, parent_indent: int) -> tuple[int, list[str], int]:
    """The indented body starting at ``lines[start]``: (first line index, lines, end index)."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    first = i
    body: list[str] = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > parent_indent):
        body.append(lines[i])
        i += 1
    while body and not body[-1].strip():
        body.pop()
    return first, body, i


def looks_like_python(code: str) -> bool:
    """Whether a ``::`` literal block is Python: it parses and imports, defines, assigns or
    calls something (a folder tree such as ``DIR/train-images-idx3-ubyte.gz`` parses too)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    doing = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.Call)
    return any(isinstance(node, doing) for node in ast.walk(tree))


def _rst_blocks(page: str, lines: list[str]) -> list[Block]:
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        literal = line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        if not directive and not literal:
            i += 1
            continue
        indent = _indent(line)
        j = i + 1
        if directive:  # options such as :caption: come first
            while (
                j < len(lines) and lines[j].strip().startswith(":") and _indent(lines[j]) > indent
            ):
                j += 1
        first, body, end = _body(lines, j, indent)
        if not body:
            i += 1
            continue
        code = textwrap.dedent("\n".join(body)) + "\n"
        if directive:
            language = directive["lang"] or "python"
        else:
            language = "python" if looks_like_python(code) else "text"
        skip = _marker_before(lines, i, _RST_MARKER)
        if skip is None and (match := _IN_BLOCK_MARKER.search(code)):
            skip = match["reason"]
        blocks.append(Block(page, first + 1, language, code, skip))
        i = end
    return blocks


def _markdown_blocks(page: str, lines: list[str]) -> list[Block]:
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        code = "\n".join(lines[i + 1 : j]) + "\n"
        skip = _marker_before(lines, i, _MD_MARKER)
        if skip is None and (match := _IN_BLOCK_MARKER.search(code)):
            skip = match["reason"]
        blocks.append(Block(page, i + 2, fence["lang"] or "text", code, skip))
        i = j + 1
    return blocks


def extract(path: Path, root: Path | None = None) -> list[Block]:
    """Every code block of a ``.rst`` or ``.md`` file, in document order."""
    page = str(path.relative_to(root)) if root else path.name
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".md":
        return _markdown_blocks(page, lines)
    return _rst_blocks(page, lines)


# --------------------------------------------------------------------------- Python


def needs_lines(code: str) -> dict[int, str]:
    """The 1-based lines of ``code`` whose comment says what they need (``CUDA``/``internet``)."""
    found: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.COMMENT and (match := _NEEDS.search(token.string)):
                found[token.start[0]] = match["what"]
    except (tokenize.TokenError, SyntaxError):
        pass
    return found


def without_statements(code: str, lines: set[int]) -> str:
    """``code`` with each simple statement that covers one of ``lines`` replaced by ``pass``."""
    if not lines:
        return code
    tree = ast.parse(code)
    source = code.splitlines()
    spans: list[tuple[int, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not hasattr(node, "body"):
            end = node.end_lineno or node.lineno
            if any(node.lineno <= n <= end for n in lines):
                spans.append((node.lineno, end))
    for start, end in spans:
        indent = source[start - 1][: _indent(source[start - 1])]
        source[start - 1] = f"{indent}pass  # not run here: {source[start - 1].strip()}"
        for n in range(start, end):
            source[n] = ""
    return "\n".join(source) + "\n"


def python_source(block: Block) -> list[tuple[int, str]]:
    """The Python lines of a block with their line numbers in the page (doctests: the
    source of their examples)."""
    if not block.is_doctest:
        return [(block.line + i, text) for i, text in enumerate(block.code.splitlines())]
    out: list[tuple[int, str]] = []
    for example in doctest.DocTestParser().get_examples(block.code):
        for i, text in enumerate(example.source.splitlines()):
            out.append((block.line + example.lineno + i, text))
    return out


def page_module(blocks: list[Block]) -> str:
    """All Python blocks of a page as one module, each line on its line of the page, so that
    a type checker's line numbers are the page's."""
    lines: list[str] = []
    for block in blocks:
        if not block.is_python:
            continue
        for number, text in python_source(block):
            while len(lines) < number - 1:
                lines.append("")
            lines.append(text)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- console


def commands(block: Block) -> list[Command]:
    """The ``$ COMMAND`` lines of a console block with the output shown after each."""
    found: list[Command] = []
    lines = block.code.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        start = i
        text = lines[i][2:]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1].rstrip() + " " + lines[i].strip()
        i += 1
        output: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        while output and not output[-1].strip():
            output.pop()
        found.append(Command(block.line + start, text, "\n".join(output)))
    return found


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


def _program(words: list[str]) -> list[str]:
    """The words after leading ``VAR=value`` assignments."""
    i = 0
    while i < len(words) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[i]):
        i += 1
    return words[i:]


def is_lenet5(text: str) -> bool:
    """Whether a console command runs the ``lenet5`` program."""
    words = _program(_words(text))
    if not words:
        return False
    if words[0] in ("lenet5", ".venv/bin/lenet5"):
        return True
    return words[0] in ("python", "python3", ".venv/bin/python") and words[1:3] == ["-m", "lenet5"]


@dataclass(frozen=True)
class Plan:
    """What the runner does with one console command."""

    #: ``"compare"`` (run, output compared), ``"run"`` (run, exit code checked),
    #: ``"interrupt"`` (run, then Ctrl-C), ``"export"``, ``"status"`` (``echo $?``) or
    #: ``"skip"``.
    action: str
    reason: str = ""


def plan(command: Command, cuda: bool = False) -> Plan:
    """What the runner does with a console command, and why."""
    text = command.text
    match = _NEEDS.search(text)
    if match and (match["what"] == "internet" or not cuda):
        return Plan("skip", f"needs {match['what']}")
    words = _program(_words(text))
    if words[:1] == ["export"]:
        return Plan("export")
    if words == ["echo", "$?"]:
        return Plan("status")
    if not is_lenet5(text):
        name = words[0] if words else text
        if ("pip" in name and "install" in words) or words[1:3] == ["-m", "venv"]:
            why = "installs into an environment (CI's .ci/run installs the project so"
            return Plan("skip", f"{why}; the runner installs a page's own plugin from its files)")
        return Plan("skip", f"not a lenet5 command ({name}): not run by the docs runner")
    if "^C" in command.output:
        return Plan("interrupt", "interrupted with Ctrl-C, as shown: exit code 130 checked")
    sub = words[1:] if words[0].endswith("lenet5") else words[3:]
    if not command.output.strip():
        return Plan("run", "no output shown: exit code checked")
    if sub[:1] == ["train"]:
        return Plan("run", "trains on the runner's small training split: exit code checked")
    return Plan("compare")


# --------------------------------------------------------------------------- comparing


def _strip(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def output_matches(expected: str, actual: str) -> bool:
    """Doctest's comparison with ``...`` as a wildcard (within and across lines), trailing
    spaces ignored."""
    checker = doctest.OutputChecker()
    return checker.check_output(_strip(expected), _strip(actual), doctest.ELLIPSIS)


_PREDICTION = re.compile(
    r"^(?P<path>\S+): (?P<label>.+?) \((?P<p>[\d.]+)%\)   top-(?P<k>\d+): (?P<top>.+)$"
)


def _prediction_fields(line: str) -> tuple[str, str, int, int, str] | None:
    match = _PREDICTION.match(line)
    if not match:
        return None
    top = match["top"].split(", ")
    return match["path"], match["label"], int(match["k"]), len(top), top[0].rsplit(" ", 1)[0]


def _json_predictions(text: str) -> list[tuple[Any, ...]] | None:
    try:
        items = json.loads(text)
    except ValueError:
        return None
    return [
        (i["path"], i["prediction"], i["label"], [sorted(c) for c in i["top_k"]],
         i["top_k"][0]["class"], sorted(i))
        for i in items
    ]  # fmt: skip


def predictions_match(expected: str, actual: str) -> bool:
    """``lenet5 predict`` output on the runner's own pictures: the same lines, paths, labels
    and number of candidates (and the first candidate the prediction), but not the same
    probabilities, which depend on the pictures. Other lines (errors) compare as text."""
    want_json, got_json = _json_predictions(expected), _json_predictions(actual)
    if want_json is not None or got_json is not None:
        return want_json == got_json
    want, got = _strip(expected).splitlines(), _strip(actual).splitlines()
    if len(want) != len(got):
        return False
    for w, g in zip(want, got, strict=True):
        fields = _prediction_fields(w)
        if fields is None:
            if not output_matches(w, g):
                return False
        elif _prediction_fields(g) != fields or fields[1] != fields[4]:
            return False  # (the first candidate must be the prediction)
    return True


# --------------------------------------------------------------------------- the runner


@dataclass
class Outcome:
    """What happened to one block or command."""

    line: int
    kind: str
    status: str  # "ok", "failed" or "skipped"
    detail: str = ""
    seconds: float = 0.0


@dataclass
class PageRun:
    blocks: list[Block]
    report: Path
    cuda: bool
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__main__"})
    outcomes: list[Outcome] = field(default_factory=list)
    status: int = 0

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.report.write_text(json.dumps([asdict(o) for o in self.outcomes], indent=1))
        print(f"[doc-test] {outcome.line}: {outcome.kind} {outcome.status} {outcome.detail[:200]}")
        sys.stdout.flush()

    def _use_data(self, large: bool) -> None:
        """Point ``$DOC_TEST_DATA_LINK`` (the page's ``../shared/data``) at the data folders
        with enough training images to hold out what the next code asks for, or at the small
        ones (``$DOC_TEST_DATA_LARGE``, ``$DOC_TEST_DATA_SMALL``)."""
        link, target = os.environ.get("DOC_TEST_DATA_LINK"), os.environ.get("DOC_TEST_DATA_SMALL")
        if large and os.environ.get("DOC_TEST_DATA_LARGE"):
            target = os.environ["DOC_TEST_DATA_LARGE"]
        if link and target and os.readlink(link) != target:
            tmp = f"{link}.tmp"
            os.symlink(target, tmp)
            os.replace(tmp, link)

    def run(self) -> None:
        # The Python blocks share their data (a split loaded early is held out from later).
        python_holds_out = held_out("".join(b.code for b in self.blocks if b.is_python)) > 0
        for block in self.blocks:
            started = time.perf_counter()
            if block.is_python:
                self._use_data(python_holds_out)
            if block.is_python and block.skip:
                self.record(Outcome(block.line, "python", "skipped", block.skip))
            elif block.is_python and block.is_doctest:
                self.record(self._doctest(block, started))
            elif block.is_python:
                self.record(self._python(block, started))
            elif block.language == "console":
                for command in commands(block):
                    self._use_data(held_out(command.text) > 0)
                    if block.skip:
                        self.record(Outcome(command.line, "console", "skipped", block.skip))
                    else:
                        self.record(self._console(command))

    def _python(self, block: Block, started: float) -> Outcome:
        needs = needs_lines(block.code)
        skipped = {n for n, what in needs.items() if what == "internet" or not self.cuda}
        code = without_statements(block.code, skipped)
        padded = "\n" * (block.line - 1) + code
        try:
            exec(compile(padded, block.page, "exec"), self.namespace)
        except BaseException as exc:  # a doc block may raise anything, SystemExit included
            if isinstance(exc, KeyboardInterrupt):
                raise
            detail = "".join(traceback.format_exception(exc)[-6:])
            return Outcome(block.line, "python", "failed", detail, time.perf_counter() - started)
        note = ""
        if skipped:
            lines = sorted(block.line + n - 1 for n in skipped)
            note = f"lines {lines} not run ({', '.join(sorted({needs[n] for n in skipped}))})"
        return Outcome(block.line, "python", "ok", note, time.perf_counter() - started)

    def _doctest(self, block: Block, started: float) -> Outcome:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(
            block.code, self.namespace, block.page, block.page, block.line - 1
        )
        out = io.StringIO()
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test, out=out.write, clear_globs=False)
        status = "failed" if runner.failures else "ok"
        return Outcome(block.line, "doctest", status, out.getvalue(), time.perf_counter() - started)

    def _console(self, command: Command) -> Outcome:
        step = plan(command, self.cuda)
        started = time.perf_counter()
        if step.action == "skip":
            return Outcome(command.line, "console", "skipped", f"{step.reason}: {command.text}")
        if step.action == "export":
            name, _, value = _program(_words(command.text))[1].partition("=")
            os.environ[name] = value
            return Outcome(command.line, "console", "ok", command.text)
        if step.action == "status":
            ok = command.output.strip() == str(self.status)
            detail = f"echo $? printed {self.status}, the page shows {command.output.strip()}"
            return Outcome(command.line, "console", "ok" if ok else "failed", detail)
        expected_status = self._shown_status(command)
        if step.action == "interrupt":
            expected_status = 130
            status, output = self._in_shell(command.text, interrupt=True)
        elif _SHELL.search(_unquoted(command.text)):
            status, output = self._in_shell(command.text)
        else:
            status, output = self._in_process(command.text)
        if status is None:
            return Outcome(command.line, "console", "failed", f"timed out: {command.text}")
        self.status = status
        seconds = time.perf_counter() - started
        problems = []
        if status != expected_status:
            problems.append(f"exit code {status}, expected {expected_status}")
        if step.action == "compare":
            sub = _program(_words(command.text))[1:2]
            if sub == ["info"]:  # the runner's data folders are subsets: their MD5s are unknown
                same = output_matches(_no_data_lines(command.output), _no_data_lines(output))
            else:
                same = (predictions_match if sub == ["predict"] else output_matches)(
                    command.output, output
                )
            if not same:
                problems.append(f"output differs from the page's:\n{command.output}")
        if problems:
            detail = f"$ {command.text}\n" + "\n".join(problems) + f"\n--- it printed:\n{output}"
            return Outcome(command.line, "console", "failed", detail, seconds)
        return Outcome(command.line, "console", "ok", f"{step.action}: {command.text}", seconds)

    def _shown_status(self, command: Command) -> int:
        """The exit code the page shows with a following ``echo $?``, else 0."""
        for block in self.blocks:
            if block.language != "console":
                continue
            listed = commands(block)
            for this, after in itertools.pairwise(listed):
                if this == command and plan(after).action == "status":
                    return int(after.output.strip())
        return 0

    @staticmethod
    def _in_process(text: str) -> tuple[int, str]:
        """Run a plain ``lenet5`` command in this process (the program is
        :func:`lenet5.cli.main`; this saves the seconds of a new process importing torch):
        stdout and stderr together, in order, and the exit code."""
        from lenet5.cli import main

        words = _words(text)
        program = _program(words)
        env = dict(word.split("=", 1) for word in words[: len(words) - len(program)])
        args = program[1:] if program[0].endswith("lenet5") else program[3:]
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                try:
                    status = main(args)
                except SystemExit as exit:
                    code = exit.code
                    status = code if isinstance(code, int) else (0 if code is None else 1)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        return status, buffer.getvalue()

    @staticmethod
    def _in_shell(text: str, interrupt: bool = False) -> tuple[int | None, str]:
        """Run a command with bash; with ``interrupt``, press Ctrl-C (SIGINT to its process
        group) once it has printed its first line (training has started)."""
        process = subprocess.Popen(
            ["bash", "-c", text],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        first = ""
        if interrupt:
            assert process.stdout is not None
            first = process.stdout.readline()
            _wait_for_run_folder(text)
            time.sleep(2.0)  # into the first batches: the checkpoint has a place to save
            os.killpg(process.pid, signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return None, ""
        return process.returncode, first + output


def _wait_for_run_folder(command: str, timeout: float = 120.0) -> None:
    """Wait until a ``lenet5 train --out DIR`` run has written ``DIR/train_config.json``.

    The settings are written before training starts, so the Ctrl-C that follows finds a run
    folder to resume from however loaded the machine is (a fixed pause did not: on a busy
    machine the interrupt could come before the folder existed).
    """
    match = re.search(r"--out[ =](\S+)", command)
    if match is None:
        return
    settings = Path(match.group(1)) / "train_config.json"
    deadline = time.monotonic() + timeout
    while not settings.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _no_data_lines(text: str) -> str:
    """``lenet5 info`` output without the lines that say where (and which) data was found."""
    return "\n".join(x for x in text.splitlines() if not re.match(r"[\w-]+ data: ", x))


def _unquoted(text: str) -> str:
    """A command without its quoted parts and its comment."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "''", text)
    return re.sub(r"(^|\s)#.*$", "", text)


#: Shell syntax that needs a real shell: pipes, redirections, lists, substitutions, globs.
_SHELL = re.compile(r"[|&;<>`*?]|\$\(|\$[A-Za-z_{]")


def main(argv: list[str]) -> int:
    page, report = Path(argv[0]), Path(argv[1])
    root = Path(argv[2]) if len(argv) > 2 else None
    import torch

    run = PageRun(extract(page, root), report, torch.cuda.is_available())
    run.report.write_text("[]")
    run.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
