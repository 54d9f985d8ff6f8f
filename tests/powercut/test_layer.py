#!/usr/bin/python3
"""test_layer.py — tests powercutfs itself (tests/powercut/powercutfs.c), `make powercut-layer`.

Each case mounts a fresh powercutfs over a fresh backing directory, writes through the mount,
cuts the power, unmounts and checks what the backing directory (the "disk") kept. POWERCUTFS
names the binary. Exit status 0 only if every case passed; a case that fails says what it saw.
"""
import errno
import mmap
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

PAGE = 4096
BIN = os.environ.get("POWERCUTFS", "build/tests/powercut/powercutfs")
MOUNT_WAIT_S = 10


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class Layer:
    """One powercutfs mount: started in the foreground (-f) so we own its pid."""

    def __init__(self, root, name="fs"):
        self.backing = os.path.join(root, name + ".disk")
        self.mnt = os.path.join(root, name + ".mnt")
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.log = os.path.join(root, name + ".log")
        self.proc = None

    def mount(self):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen([BIN, self.backing, self.mnt, "-f"],
                                     stderr=self.logf, stdout=self.logf)
        deadline = time.monotonic() + MOUNT_WAIT_S
        while not mounted(self.mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise Fail("powercutfs did not mount (log: %s)" % open(self.log).read())
            time.sleep(0.02)
        return self

    def path(self, name):
        return os.path.join(self.mnt, name)

    def disk(self, name):
        return os.path.join(self.backing, name)

    def cut(self, keep, seed):
        with open(self.path(".powercut"), "w") as f:
            f.write("cut %d %d\n" % (keep, seed))

    def status(self):
        with open(self.path(".powercut")) as f:
            return dict(line.split() for line in f.read().splitlines())

    def umount(self):
        if self.proc is None:
            return
        if mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            self.proc.wait(timeout=MOUNT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # our own child, by its pid
            self.proc.wait()
            if mounted(self.mnt):
                subprocess.run(["fusermount3", "-uz", self.mnt], check=False)
        self.proc = None
        self.logf.close()


def write_file(path, data, sync):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.pwrite(fd, data, 0)
        if sync == "fsync":
            os.fsync(fd)
        elif sync == "fdatasync":
            os.fdatasync(fd)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def pages(seed, n):
    """n pages of distinct random bytes."""
    r = random.Random(seed)
    return [r.randbytes(PAGE) for _ in range(n)]


# ---------------------------------------------------------------------------- cases

def case_synced_survives(root):
    """Data made durable by fsync or fdatasync is on the disk after a cut, whole."""
    fs = Layer(root).mount()
    try:
        a = b"".join(pages(1, 3)) + b"tail"
        b = b"".join(pages(2, 2))
        write_file(fs.path("a"), a, "fsync")
        write_file(fs.path("b"), b, "fdatasync")
        # calls that reach the layer by handle, without a path (nullpath_ok)
        with open(fs.path(".powercut")) as c:
            os.fstat(c.fileno())
        d = os.open(fs.mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fchmod(d, 0o755)
            os.fstat(d)
        finally:
            os.close(d)
        fs.cut(0, 1)
    finally:
        fs.umount()
    check(read(fs.disk("a")) == a, "fsync'd file a changed by the cut")
    check(read(fs.disk("b")) == b, "fdatasync'd file b changed by the cut")
    fs.mount()  # and the layer, mounted again, reads it
    try:
        check(read(fs.path("a")) == a, "a reads differently through the new mount")
    finally:
        fs.umount()


def case_unsynced_dropped(root):
    """With keep 0, nothing written after the last sync survives, though reads saw it."""
    fs = Layer(root).mount()
    try:
        old = b"".join(pages(3, 4))
        new = b"".join(pages(4, 4))
        write_file(fs.path("a"), old, "fsync")
        write_file(fs.path("a"), new, None)
        write_file(fs.path("fresh"), new, None)
        check(read(fs.path("a")) == new, "a read before the cut does not see the write")
        check(os.stat(fs.path("fresh")).st_size == len(new), "size of unsynced file")
        st = fs.status()
        check(int(st["unsynced_pages"]) == 8, "unsynced_pages %s, want 8" % st)
        fs.cut(0, 5)
    finally:
        fs.umount()
    check(read(fs.disk("a")) == old, "unsynced overwrite of a reached the disk")
    check(read(fs.disk("fresh")) == b"", "unsynced data of a new file reached the disk")


def case_keep_all(root):
    """With keep 1000, every unsynced page reaches the disk."""
    fs = Layer(root).mount()
    try:
        old = b"".join(pages(5, 4))
        new = b"".join(pages(6, 4)) + b"grown"
        write_file(fs.path("a"), old, "fsync")
        write_file(fs.path("a"), new, None)
        fs.cut(1000, 9)
    finally:
        fs.umount()
    check(read(fs.disk("a")) == new, "keep 1000 lost unsynced data")


def kept_pages(root, name, seed, n=200, keep=500):
    """Writes n distinct unsynced pages over n synced ones, cuts with keep/seed; returns the
    set of page indexes that hold the new data (checking each is wholly old or wholly new)."""
    old, new = pages(7, n), pages(8, n)
    fs = Layer(root, name).mount()
    try:
        write_file(fs.path("a"), b"".join(old), "fsync")
        fd = os.open(fs.path("a"), os.O_WRONLY)
        for i in range(n):  # one write per page, in a shuffled order
            j = (i * 37) % n
            os.pwrite(fd, new[j], j * PAGE)
        os.close(fd)
        fs.cut(keep, seed)
    finally:
        fs.umount()
    disk = read(fs.disk("a"))
    check(len(disk) == n * PAGE, "size changed by the cut")
    kept = set()
    for i in range(n):
        p = disk[i * PAGE:(i + 1) * PAGE]
        check(p in (old[i], new[i]), "page %d is neither old nor new (torn)" % i)
        if p == new[i]:
            kept.add(i)
    return kept


def case_partial_deterministic(root):
    """keep 500 keeps exactly half the pages; the same seed keeps the same ones."""
    k1 = kept_pages(root, "s7a", 7)
    k2 = kept_pages(root, "s7b", 7)
    k3 = kept_pages(root, "s8", 8)
    check(len(k1) == 100, "keep 500 of 200 pages kept %d" % len(k1))
    check(k1 == k2, "seed 7 kept different pages in two runs")
    check(k1 != k3, "seeds 7 and 8 kept the same pages")


def case_mmap(root):
    """Pages stored through a shared mmap survive when msync'd, are lost when not."""
    fs = Layer(root).mount()
    try:
        fd = os.open(fs.path("m"), os.O_CREAT | os.O_RDWR, 0o644)
        os.ftruncate(fd, 4 * PAGE)  # metadata: durable at once
        m = mmap.mmap(fd, 4 * PAGE)
        data = pages(10, 4)
        m[0:PAGE] = data[0]
        m[PAGE:2 * PAGE] = data[1]
        m.flush()  # msync(MS_SYNC): written back and fsync'd
        m[2 * PAGE:3 * PAGE] = data[2]
        m[3 * PAGE:4 * PAGE] = data[3]
        m.close()
        os.close(fd)  # close writes dirty pages back to the layer: buffered, not synced
        st = fs.status()
        check(int(st["unsynced_pages"]) == 2,
              "after close, unsynced_pages %s, want 2 (pages 2 and 3)" % st)
        fs.cut(0, 3)
    finally:
        fs.umount()
    disk = read(fs.disk("m"))
    check(len(disk) == 4 * PAGE, "size %d" % len(disk))
    check(disk[0:2 * PAGE] == data[0] + data[1], "msync'd mmap pages lost")
    check(disk[2 * PAGE:] == bytes(2 * PAGE), "mmap pages without msync reached the disk")


def case_writeback_is_not_sync(root):
    """syncfs(2) makes the kernel write dirty mmap pages back to the layer, which keeps them
    unsynced: a cut with keep 0 drops them, as a disk drops what was never flushed."""
    fs = Layer(root).mount()
    try:
        fd = os.open(fs.path("m"), os.O_CREAT | os.O_RDWR, 0o644)
        os.ftruncate(fd, 3 * PAGE)
        m = mmap.mmap(fd, 3 * PAGE)
        data = pages(11, 3)
        m[:] = b"".join(data)
        subprocess.run(["sync", "-f", fs.path("m")], check=True)
        st = fs.status()
        check(int(st["unsynced_pages"]) == 3,
              "after syncfs, unsynced_pages %s, want 3" % st)
        check(int(st["syncs"]) == 0, "syncfs counted as a sync: %s" % st)
        fs.cut(0, 4)
        m.close()
        try:
            os.close(fd)  # the close writes back nothing, but says EIO: the machine is dead
        except OSError:
            pass
    finally:
        fs.umount()
    check(read(fs.disk("m")) == bytes(3 * PAGE), "pages written back by syncfs survived keep 0")


def expect_eio(what, fn):
    try:
        fn()
    except OSError as e:
        check(e.errno == errno.EIO, "%s after the cut: %s, want EIO" % (what, e))
        return
    raise Fail("%s after the cut succeeded" % what)


def case_eio_after_cut(root):
    """After the cut every operation fails with EIO, until the layer is mounted again."""
    fs = Layer(root).mount()
    try:
        write_file(fs.path("a"), b"x" * PAGE, "fsync")
        fd = os.open(fs.path("a"), os.O_RDWR)
        try:
            fs.cut(0, 1)
            expect_eio("write", lambda: os.pwrite(fd, b"y", 0))
            expect_eio("fsync", lambda: os.fsync(fd))
            expect_eio("open", lambda: os.open(fs.path("a"), os.O_RDONLY))
            expect_eio("create", lambda: os.open(fs.path("b"), os.O_CREAT | os.O_WRONLY))
            expect_eio("stat", lambda: os.stat(fs.path("a")))
            expect_eio("mkdir", lambda: os.mkdir(fs.path("d")))
            expect_eio("rename", lambda: os.rename(fs.path("a"), fs.path("c")))
            expect_eio("listdir", lambda: os.listdir(fs.mnt))
        finally:
            try:
                os.close(fd)  # an open file would keep the mount busy
            except OSError:
                pass
    finally:
        fs.umount()
    fs.mount()
    try:
        write_file(fs.path("b"), b"alive", "fsync")
        check(read(fs.path("b")) == b"alive", "the remounted layer does not work")
    finally:
        fs.umount()


def case_unlinked_file_forgotten(root):
    """A file deleted while pages of it are unsynced and nothing has it open is forgotten: its
    pages dropped (no one can read or sync them) and its backing descriptor closed, so the
    disk gets its blocks back (kept, they filled a wiped jepsen-lite node's disk unseen)."""
    fs = Layer(root).mount()
    try:
        write_file(fs.path("gone"), b"".join(pages(21, 64)), "fsync")
        write_file(fs.path("gone"), pages(22, 1)[0], None)  # one page left unsynced
        write_file(fs.path("kept"), pages(23, 1)[0], None)
        st = fs.status()
        check(int(st["unsynced_pages"]) == 2, "before the unlink: %s" % st)
        os.unlink(fs.path("gone"))
        st = fs.status()
        check(int(st["unsynced_pages"]) == 1,
              "the deleted file's unsynced page is still held: %s" % st)
        os.rename(fs.path("kept"), fs.path("kept2"))  # a rename keeps its pages
        check(int(fs.status()["unsynced_pages"]) == 1, "a rename dropped pages")
    finally:
        fs.umount()


CASES = [case_synced_survives, case_unsynced_dropped, case_keep_all,
         case_partial_deterministic, case_mmap, case_writeback_is_not_sync, case_eio_after_cut,
         case_unlinked_file_forgotten]


def main():
    if not os.access(BIN, os.X_OK):
        print("test_layer: %s not built (make powercut-build)" % BIN, file=sys.stderr)
        return 2
    only = sys.argv[1:]
    failed = 0
    for case in CASES:
        name = case.__name__[len("case_"):]
        if only and name not in only:
            continue
        root = tempfile.mkdtemp(prefix="powercut-layer-")
        t = time.monotonic()
        try:
            case(root)
            print("ok   %-22s %.2fs" % (name, time.monotonic() - t))
        except Fail as e:
            failed += 1
            print("FAIL %-22s %s" % (name, e))
        finally:
            # never remove a directory that is still a mount point
            if not any(mounted(os.path.join(root, d)) for d in os.listdir(root)):
                shutil.rmtree(root)
            else:
                print("test_layer: %s left mounted" % root, file=sys.stderr)
    print("%d cases, %d failed" % (len([c for c in CASES if not only or c.__name__[5:] in only]),
                                    failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
