"""The page references only files that exist in its folder (self-contained:
no absolute paths, no network)."""
import html.parser
import os
import urllib.parse


class _refs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v is not None:
                self.refs.append((tag, k, v))


def refs_of(path):
    p = _refs()
    p.feed(path.read_text())
    return p.refs


def test_every_src_and_href_exists(rendered):
    out, _ = rendered
    refs = refs_of(out / "index.html")
    imgs = [r for r in refs if r[0] == "img"]
    assert len(imgs) >= 6
    for tag, attr, v in refs:
        u = urllib.parse.urlparse(v)
        assert not u.scheme and not u.netloc and not v.startswith("/"), f"{tag} {attr}={v}: not relative"
        assert (out / urllib.parse.unquote(u.path)).is_file(), f"{tag} {attr}={v}: missing"


def test_no_stray_files(rendered):
    """Everything in the folder is the page or one of its charts."""
    out, _ = rendered
    referenced = {v for _, _, v in refs_of(out / "index.html")}
    for name in os.listdir(out):
        assert name == "index.html" or name in referenced, name
