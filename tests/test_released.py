"""Released checkpoints by name, without the network: a local server on 127.0.0.1.

The test server serves the original code's tiny checkpoints (``../shared/reference``)
under released names, honours HTTP Range requests, and can cut a download in the
middle or answer with an HTML error page. ``SSAST_SB_RELEASE_URL`` points the
registry at it and ``SSAST_SB_CACHE`` at a fresh folder.
"""

import http.server
import io
import json
import logging
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
import torch

from ssast_sb import released
from ssast_sb.checkpoints import encoder_from_original
from ssast_sb.released import CACHE_ENV, URL_ENV, ReleaseError, resolve_checkpoint
from tests.conftest import load_reference, run_python

ROOT = Path(__file__).resolve().parents[1]
PATCH, FRAME = "SSAST-Tiny-Patch-400", "SSAST-Tiny-Frame-400"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        server = self.server
        name = self.path.lstrip("/")
        server.requests.append((name, self.headers.get("Range")))
        if server.mode == "html":
            body = b"<html><body>Too many requests</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if name not in server.files:
            self.send_error(404)
            return
        data = server.files[name]
        start = 0
        asked = self.headers.get("Range")
        if asked and asked.startswith("bytes="):
            start = int(asked[len("bytes=") :].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if server.mode == "cut":  # half of what is asked, then the connection drops
            self.wfile.write(data[start : start + (len(data) - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data[start:])


@pytest.fixture
def server(reference_dir):
    """A server of the tiny reference checkpoints under released names."""
    files = {}
    for name, dump in ((PATCH, "tiny_patch_seed0.pt"), (FRAME, "tiny_frame_seed0.pt")):
        buffer = io.BytesIO()
        torch.save(load_reference(reference_dir / dump)["pretrain_state_dict"], buffer)
        files[f"{name}.pth"] = buffer.getvalue()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.mode = files, [], "normal"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch, server):
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    monkeypatch.setenv(URL_ENV, server.url)
    return folder / "checkpoints"


def test_first_download_then_the_cache_without_a_request(server, cache, caplog):
    caplog.set_level(logging.INFO, logger="ssast_sb")
    path = resolve_checkpoint(PATCH)
    assert path == cache / f"{PATCH}.pth"
    assert path.read_bytes() == server.files[f"{PATCH}.pth"]
    record = json.loads((cache / f"{PATCH}.pth.json").read_text())
    assert record["bytes"] == path.stat().st_size and len(record["sha256"]) == 64
    assert f"SHA-256 {record['sha256']}, checked" in caplog.text
    assert f"Downloading {server.url}/{PATCH}.pth (" in caplog.text
    encoder, _ = encoder_from_original(PATCH)  # every loader takes the name
    assert encoder.config.embed_dim == 192
    assert len(server.requests) == 1
    # The same name again, and with .pth in another case: no request.
    assert resolve_checkpoint("ssast-tiny-patch-400.pth") == path
    assert "using the cached" in caplog.text and len(server.requests) == 1
    # A path that exists is used as it is.
    assert resolve_checkpoint(str(path)) == str(path)


def test_a_download_cut_in_the_middle_resumes_where_it_stopped(server, cache):
    server.mode = "cut"
    with pytest.raises(ReleaseError) as error:
        resolve_checkpoint(PATCH)
    partial = cache / f"{PATCH}.pth.partial"
    size = len(server.files[f"{PATCH}.pth"])
    assert 0 < partial.stat().st_size < size and not (cache / f"{PATCH}.pth").exists()
    assert f"kept in {partial}; the next run resumes" in str(error.value)
    server.mode = "normal"
    path = resolve_checkpoint(PATCH)
    assert server.requests[-1] == (f"{PATCH}.pth", f"bytes={size // 2}-")
    assert path.read_bytes() == server.files[f"{PATCH}.pth"] and not partial.exists()


@pytest.mark.parametrize("corruption", ["truncated", "html", "other_model"])
def test_a_file_that_is_not_the_checkpoint_is_refused(server, cache, corruption):
    original = server.files[f"{PATCH}.pth"]
    if corruption == "truncated":
        server.files[f"{PATCH}.pth"] = original[: len(original) // 3]
    elif corruption == "html":
        server.mode = "html"
    else:
        server.files[f"{PATCH}.pth"] = server.files[f"{FRAME}.pth"]
    with pytest.raises(ReleaseError) as error:
        resolve_checkpoint(PATCH)
    message = str(error.value)
    if corruption == "other_model":
        assert "holds a tiny model with frame patches, but SSAST-Tiny-Patch-400" in message
    else:
        assert "is not a complete SSAST-Tiny-Patch-400 checkpoint" in message
    assert released.RELEASES[PATCH].url in message and str(cache / f"{PATCH}.pth") in message
    assert not (cache / f"{PATCH}.pth").exists()  # never used as the checkpoint
    assert (cache / f"{PATCH}.pth.corrupt").exists()


def test_offline_the_error_names_the_folder_and_a_copy_there_is_used(server, cache, tmp_path):
    data = server.files[f"{FRAME}.pth"]
    server.shutdown()
    server.server_close()
    with pytest.raises(ReleaseError) as error:
        resolve_checkpoint(FRAME)
    message = str(error.value)
    assert message.startswith(f"Could not download {FRAME} from {server.url}/{FRAME}.pth")
    assert f"Download {released.RELEASES[FRAME].url} by hand" in message
    assert f"save it as {cache / (FRAME + '.pth')}" in message
    (cache / f"{FRAME}.pth").write_bytes(data)  # a copy downloaded by hand
    assert resolve_checkpoint(FRAME) == cache / f"{FRAME}.pth"
    assert json.loads((cache / f"{FRAME}.pth.json").read_text())["bytes"] == len(data)


def test_the_listing_says_what_is_cached(server, cache, capsys):
    resolve_checkpoint(FRAME)
    released.main([])
    printed = capsys.readouterr().out
    assert f"cache: {cache}" in printed
    assert f"| {FRAME} | tiny (6M) | frame | 400 | 47.8 | untested | yes |" in printed
    assert f"| {PATCH} | tiny (6M) | patch | 400 | 53.3 | 75.7 | no |" in printed
    assert printed.count("| SSAST-") == 7


def test_embed_and_a_recipe_take_a_released_name(server, tmp_path, shared_dir):
    clips = tmp_path / "clips"
    clips.mkdir()
    for clip in sorted((shared_dir / "data" / "kws_sid_fsdd" / "audio").glob("*.flac"))[:3]:
        shutil.copy(clip, clips / clip.name)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env[CACHE_ENV], env[URL_ENV] = str(tmp_path / "cache"), "http://127.0.0.1:9"  # closed
    embed = ["-m", "ssast_sb.embed", "--model", PATCH, "--input", clips]
    # With the network blocked: the folder to put the file in, and no traceback.
    result = run_python(*embed, "--output", tmp_path / "e.pt", env=env)
    folder = tmp_path / "cache" / "checkpoints"
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"save it as {folder / (PATCH + '.pth')}" in result.stderr
    # Through the test server: downloaded, checked and used.
    env[URL_ENV] = server.url
    result = run_python(*embed, "--output", tmp_path / "e.pt", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch.load(tmp_path / "e.pt", weights_only=False)["embeddings"].shape[0] == 3
    # A recipe's --pretrained_path takes a name too (the download is shared through the cache).
    from tests.test_custom_recipe import digits_as_class_folders

    data = digits_as_class_folders(shared_dir, tmp_path / "digits", every=12)
    recipe = [ROOT / "recipes" / "custom" / "train.py", ROOT / "hparams" / "custom.yaml"]
    options = ["--data", data, "--output_folder", tmp_path / "run", "--num_workers", "0"]
    debug = ["--debug", "--debug_batches", "2", "--debug_epochs", "1", "--noprogressbar"]
    result = run_python(*recipe, *options, *debug, "--pretrained_path", FRAME, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert f"Pretrained checkpoint {folder / (FRAME + '.pth')}: SSAST-tiny" in log
    record = json.loads((tmp_path / "run-debug" / "save" / "run_record.json").read_text())
    assert record["inputs"]["pretrained_path"]["path"] == str(folder / f"{FRAME}.pth")
