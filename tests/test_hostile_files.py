"""Hostile files: every unusable file is skipped with a one-line warning naming it while the
build finishes with the rest; links out of the folder are not followed."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.indexing.build import NoDocumentsError
from qa.indexing.documents import MAX_FILE_BYTES, load_documents
from qa.knowledge import KnowledgeBase
from qa.stores import StoreError
from tests.conftest import ARTICLE, REPO
from tests.fakes import FakeEmbedder
from tests.hostile import ANY_CHAR, FUZZ, check_answer, stored_texts

# ----- ingestion ------------------------------------------------------------------------------


def pdf_with_text(
    lines: list[str], title: str | None = None, to_unicode: str | None = None
) -> bytes:
    """A minimal one-page PDF with real text (Helvetica), written by hand: no PDF library.

    `to_unicode` is a ToUnicode CMap body for the font, to make extraction map codes oddly.
    """

    def escape(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({escape(x)}) '" for x in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica"
        + (f" /ToUnicode {7 if title else 6} 0 R >>" if to_unicode else " >>"),
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
    ]
    if title:
        objects.append(f"<< /Title ({escape(title)}) >>")
    if to_unicode:
        objects.append(f"<< /Length {len(to_unicode)} >>\nstream\n{to_unicode}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    info = " /Info 6 0 R" if title else ""
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\n"
    out += f"{trailer}startxref\n{xref}\n%%EOF\n".encode()
    return out


def blank_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# A ToUnicode map that sends "A" and "B" to lone UTF-16 surrogates.
LONE = (
    "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Lone def\n"
    "1 begincodespacerange <00> <FF> endcodespacerange\n"
    "2 beginbfchar <41> <D800> <42> <DC00> endbfchar\n"
    "endcmap CMapName currentdict /CMap defineresource pop end end"
)

SCRIPTED_HTML = """<!DOCTYPE html><html><head><title>Scripted page</title>
<style>body { color: red } .secret-style { display: none }</style>
<script>var secretScript = "do not index me";</script></head>
<body><h1>Air defence</h1><p>The S-400 is a Russian air defence system.</p>
<script type="module">import("evil").then(x => x.secretModule())</script>
<noscript>secret noscript text</noscript><template><p>secret template</p></template>
<p>Turkey bought it<!-- secret comment --> in 2017.</p><svg><text>secret svg</text></svg>
<style>.another { secret: style }</style></body></html>"""


def _hostile_folder(root) -> tuple[dict[str, str], set[str]]:
    """Write a folder of awkward files; return {file: expected reason} and the usable files."""
    docs = root / "docs"
    (docs / "sub").mkdir(parents=True)
    shutil.copy(ARTICLE, docs / "good.txt")
    (docs / "binary.txt").write_bytes(b"ELF\x02\x01\x01\x00\x00\x00" + os.urandom(2000))
    (docs / "random.pdf").write_bytes(os.urandom(4000))
    (docs / "truncated.pdf").write_bytes(pdf_with_text(["Some text here."])[:200])
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    with (docs / "huge.txt").open("wb") as handle:  # ~50 MB of real text, over the limit
        line = b"The S-400 is an air defence system bought by Turkey.\n"
        handle.write(line * (50 * 2**20 // len(line)))
    (docs / "latin1.txt").write_bytes("Café au lait, crème brûlée.".encode("latin-1"))
    (docs / "empty.md").write_bytes(b"")
    (docs / "blank.txt").write_text("   \n\n\t  \n")
    (docs / "blank.pdf").write_bytes(blank_pdf())
    (docs / "only-scripts.html").write_text("<script>x()</script><style>p{}</style>")
    (docs / "nested.html").write_text(
        "<html><body>" + "<div>" * 10_000 + "Deeply nested text." + "</div>" * 10_000
    )
    (docs / "scripted.html").write_text(SCRIPTED_HTML)
    (docs / "text.pdf").write_bytes(
        pdf_with_text(["Conkar spoke to Sputnik.", "Ankara will not buy Patriots."], "A PDF")
    )
    (docs / "surrogates.pdf").write_bytes(pdf_with_text(["AB says hello."], to_unicode=LONE))
    (docs / "bom.md").write_bytes("\ufeff# Title with BOM\n\nText after a BOM.".encode())
    # Symbolic links are never followed, wherever they point: a loop, nowhere, a device, a
    # file outside the folder, a folder outside it, or even a file inside it.
    (docs / "sub" / "loop").symlink_to("..", target_is_directory=True)  # a folder loop
    (docs / "self.txt").symlink_to("self.txt")  # a file loop
    (docs / "dangling.txt").symlink_to("does-not-exist.txt")
    os.mkfifo(docs / "fifo.txt")  # reading it would block forever
    (docs / "new\nline.bin").write_bytes(b"x")
    os.symlink(b"/dev/zero", os.fsencode(docs / "zero.txt"))
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    (docs / "etc").symlink_to("/etc", target_is_directory=True)  # not walked, warned
    (docs / "alias.txt").symlink_to("good.txt")
    with open(os.fsencode(docs) + b"/caf\xe9.txt", "w") as handle:
        handle.write("A file whose name is not UTF-8. It still holds words.")
    skipped = {
        "binary.txt": "binary",
        "random.pdf": "unreadable PDF",
        "truncated.pdf": "unreadable PDF",
        "image.png": "unsupported type",
        "huge.txt": "too large",
        "latin1.txt": "not UTF-8",
        "empty.md": "empty",
        "blank.txt": "no text",
        "blank.pdf": "no extractable text",
        "only-scripts.html": "no text",
        "self.txt": "symbolic link",
        "dangling.txt": "symbolic link",
        "fifo.txt": "empty",
        "new\\nline.bin": "unsupported type",
        "zero.txt": "symbolic link",
        "passwd.txt": "symbolic link",
        "alias.txt": "symbolic link",
        "sub/loop": "symbolic link to a folder",
        "etc": "symbolic link to a folder",
    }
    usable = {
        "good.txt", "nested.html", "scripted.html", "text.pdf", "bom.md", "caf\ufffd.txt",
        "surrogates.pdf",
    }  # fmt: skip
    return skipped, usable


def test_a_folder_of_hostile_files_builds_with_the_rest(tmp_path, caplog):
    expected_skips, usable = _hostile_folder(tmp_path)
    docs = tmp_path / "docs"
    with caplog.at_level(logging.WARNING, logger="qa"):
        kb = KnowledgeBase.build([docs], tmp_path / "kb", embedder=FakeEmbedder())
    assert kb.last_build is not None
    assert {d.id for d in kb.documents} == usable

    warnings = [r.getMessage() for r in caplog.records if r.name == "qa"]
    for warning in warnings:
        assert "\n" not in warning and warning.startswith(f"skipped {docs}/")
    for name, reason in expected_skips.items():
        matching = [w for w in warnings if w.startswith(f"skipped {docs}/{name}: ")]
        assert len(matching) == 1, (name, warnings)
        assert reason in matching[0], matching[0]
    assert len(warnings) == len(kb.last_build.skipped) == len(expected_skips)
    huge = next(w for w in warnings if "huge.txt" in w)
    assert f"the limit is {MAX_FILE_BYTES // 2**20} MB" in huge
    assert f"skipped {docs}/passwd.txt: a symbolic link (not followed)" in warnings

    by_id = {d.id: d for d in kb.documents}
    texts = stored_texts(kb)
    for doc_id, document in by_id.items():
        assert document.source == doc_id  # relative to the folder indexed, never absolute
    assert by_id["scripted.html"].title == "Scripted page"
    scripted = texts["scripted.html"]
    assert "The S-400 is a Russian air defence system." in scripted
    assert "Turkey bought it in 2017." in scripted
    assert "secret" not in scripted.lower() and "{" not in scripted
    assert texts["nested.html"] == "Deeply nested text."
    assert by_id["text.pdf"].title == "A PDF"
    assert "Ankara will not buy Patriots." in texts["text.pdf"]
    assert by_id["bom.md"].title == "Title with BOM" and not texts["bom.md"].startswith("\ufeff")
    assert texts["surrogates.pdf"] == "\ufffd\ufffd says hello."
    assert not [t for t in texts.values() if "root:" in t]
    answer = check_answer(kb, texts, "Will Ankara buy Patriots?")
    assert answer is not None and answer.passages


def test_a_link_to_a_file_outside_the_folder_is_not_indexed(tmp_path, caplog):
    """`passwd.txt -> /etc/passwd` in a folder being indexed: skipped with a warning, never read.

    Whoever can write into an indexed folder (a wiki export, a shared drive) must not be able
    to publish what the indexing account can read elsewhere.
    """
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(ARTICLE, docs / "article.txt")
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    (docs / "system").symlink_to("/etc", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="qa"):
        kb = KnowledgeBase.build([docs], tmp_path / "kb", embedder=FakeEmbedder())
    assert [d.id for d in kb.documents] == ["article.txt"]
    expected = [
        f"skipped {docs}/system: a symbolic link to a folder (not followed)",
        f"skipped {docs}/passwd.txt: a symbolic link (not followed)",
    ]
    assert [str(s) for s in kb.last_build.skipped] == expected
    assert [r.getMessage() for r in caplog.records if r.name == "qa"] == expected
    for question in ("root:x:0:0:root:/root:/bin/bash", "What is in /etc/passwd?"):
        answer = kb.ask(question)
        assert not [p for p in answer.passages if "root:" in p.chunk.text or "passwd" in p.source]
    stored = (tmp_path / "kb").rglob("*")
    assert not [f for f in stored if f.is_file() and b"root:x:0:0" in f.read_bytes()]


HTML_PIECES = st.one_of(
    st.sampled_from(
        [
            "<p>",
            "</p>",
            "<div>",
            "</div>",
            "<script>",
            "</script>",
            "<style>",
            "</style>",
            "<title>",
            "</title>",
            "<br>",
            "<!--",
            "-->",
            "<![CDATA[",
            "]]>",
            "&amp;",
            "&#0;",
            "&#xD800;",
            "&#1114112;",
            "<",
            ">",
            "</",
            "<!DOCTYPE html>",
            "<?xml?>",
            "<a href='x'>",
        ]
    ),
    st.text(ANY_CHAR.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), max_size=20),
)


@FUZZ
@given(
    suffix=st.sampled_from([".txt", ".md", ".html", ".pdf"]),
    data=st.one_of(
        st.binary(max_size=3000),
        st.lists(HTML_PIECES, max_size=60).map(lambda parts: "".join(parts).encode()),
        st.builds(
            lambda cut, flips: _damage(pdf_with_text(["Some words in a PDF."]), cut, flips),
            st.floats(0.0, 1.0),
            st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=10),
        ),
    ),
)
def test_any_bytes_in_any_supported_file_become_a_document_or_a_reason(
    tmp_path_factory, suffix, data
):
    path = tmp_path_factory.mktemp("bytes") / f"file{suffix}"
    path.write_bytes(data)
    documents, skipped = load_documents([path])
    assert len(documents) + len(skipped) == 1
    for document in documents:
        assert document.text.strip()
        document.text.encode("utf-8")  # storable
    for skip in skipped:
        assert str(skip).startswith(f"skipped {path}: ") and "\n" not in str(skip)


def _damage(data: bytes, cut: float, flips: list[tuple[float, int]]) -> bytes:
    damaged = bytearray(data[: max(1, int(len(data) * cut))])
    for where, value in flips:
        damaged[int(where * (len(damaged) - 1))] = value
    return bytes(damaged)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_skipped_with_a_warning(tmp_path):
    shutil.copy(ARTICLE, tmp_path / "good.txt")
    locked = tmp_path / "locked.txt"
    locked.write_text("secret")
    locked.chmod(0)
    try:
        documents, skipped = load_documents([tmp_path])
    finally:
        locked.chmod(0o644)
    assert [d.id for d in documents] == ["good.txt"]
    assert [str(s) for s in skipped] == [f"skipped {locked}: unreadable (Permission denied)"]


def test_no_usable_document_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(NoDocumentsError, match=f"no usable document in {tmp_path}"):
        KnowledgeBase.build([tmp_path], tmp_path / "kb", embedder=FakeEmbedder())
    # Nothing was written: there is no knowledge base to open.
    assert not (tmp_path / "kb" / "manifest.json").exists()
    with pytest.raises(StoreError, match="no knowledge base in"):
        KnowledgeBase.load(tmp_path / "kb", embedder=FakeEmbedder())


def test_no_usable_document_leaves_no_output_folder(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(NoDocumentsError):
        KnowledgeBase.build([tmp_path], tmp_path / "kb", embedder=FakeEmbedder())
    assert not (tmp_path / "kb").exists()


def _index_nothing_usable(tmp_path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "empty.txt").write_text("")
    (docs / "binary.md").write_bytes(b"\x00\x01\x02")
    done = subprocess.run(
        [sys.executable, "-m", "tests.fake_qa", "index", str(docs), "--out", str(tmp_path / "kb")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, [
        f"qa: warning: skipped {docs}/binary.md: binary content (NUL bytes), not text",
        f"qa: warning: skipped {docs}/empty.txt: empty file",
        f"qa: error: no usable document in {docs}",
    ]


def test_qa_index_on_a_folder_of_nothing_usable_exits_2(tmp_path):
    done, expected = _index_nothing_usable(tmp_path)
    assert done.returncode == 2
    # The progress bar's lines aside (see the next test), the warnings and the one error.
    lines = [
        line for line in done.stderr.splitlines() if line and not line.startswith("embedding:")
    ]
    assert lines == expected
    assert "Traceback" not in done.stderr


def test_qa_index_on_a_folder_of_nothing_usable_prints_only_the_reasons(tmp_path):
    done, expected = _index_nothing_usable(tmp_path)
    assert done.stderr.splitlines() == expected
