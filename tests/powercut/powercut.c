/*
 * powercut.so: an LD_PRELOAD shim that lets a test simulate a power cut under SQLite, the way
 * SQLite's own crash tests do with their test VFS.
 *
 * For every file whose path starts with $POWERCUT_DIR (the -shm index excepted: SQLite rebuilds
 * it after a crash), each write and truncate first appends an undo record (offset, size before,
 * the bytes it overwrites) to "<file>.undo"; fsync/fdatasync of the file empties that log. A
 * SIGKILL then leaves exactly the writes since the last sync described in the undo logs, and the
 * test (tests/tests/crash.rs, `power_cut`) rolls them back: what is left is what a disk holds after
 * a power cut that loses every write not yet synced. The log itself is written with the real
 * write(2) and lives in the page cache, which survives SIGKILL.
 *
 * Record layout (little endian): u64 offset, u64 size_before, u64 len, len bytes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void init(void) {
    if (real_write) return;
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_write = dlsym(RTLD_NEXT, "write");
}

/* The path of `fd` if it is a tracked file, else 0. */
static int tracked(int fd, char *path, size_t cap) {
    const char *dir = getenv("POWERCUT_DIR");
    if (!dir || !*dir) return 0;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, cap - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    size_t dl = strlen(dir);
    if (strncmp(path, dir, dl) != 0 || (path[dl] != '/' && path[dl] != 0)) return 0;
    size_t pl = (size_t)n;
    if (pl >= 4 && strcmp(path + pl - 4, "-shm") == 0) return 0;
    if (pl >= 5 && strcmp(path + pl - 5, ".undo") == 0) return 0;
    return 1;
}

static void write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = real_write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            abort(); /* an undo log we cannot write would make the test lie */
        }
        p += w;
        len -= (size_t)w;
    }
}

/* Appends the undo record for a change of [off, off+len) of `fd` (len may reach past the end). */
static void record(int fd, const char *path, uint64_t off, uint64_t len) {
    struct stat st;
    if (fstat(fd, &st) != 0) abort();
    uint64_t size = (uint64_t)st.st_size;
    uint64_t keep = 0;
    if (off < size) keep = (size - off < len) ? size - off : len;
    char undo[PATH_MAX + 8];
    snprintf(undo, sizeof undo, "%s.undo", path);
    int u = open(undo, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (u < 0) abort();
    uint64_t head[3] = {off, size, keep};
    write_all(u, head, sizeof head);
    if (keep > 0) {
        char *old = malloc(keep);
        if (!old) abort();
        ssize_t r = pread(fd, old, keep, (off_t)off);
        if (r < 0 && errno == EBADF) {
            /* A write-only descriptor: read the old bytes through a descriptor of our own. */
            int rd = open(path, O_RDONLY | O_CLOEXEC);
            if (rd < 0) abort();
            r = pread(rd, old, keep, (off_t)off);
            close(rd);
        }
        if (r != (ssize_t)keep) abort();
        write_all(u, old, keep);
        free(old);
    }
    close(u);
}

static void synced(const char *path) {
    char undo[PATH_MAX + 8];
    snprintf(undo, sizeof undo, "%s.undo", path);
    int u = open(undo, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (u >= 0) close(u);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    init();
    char path[PATH_MAX];
    if (!tracked(fd, path, sizeof path)) return real_pwrite64(fd, buf, n, off);
    pthread_mutex_lock(&lock);
    record(fd, path, (uint64_t)off, n);
    ssize_t r = real_pwrite64(fd, buf, n, off);
    pthread_mutex_unlock(&lock);
    return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    init();
    char path[PATH_MAX];
    if (!tracked(fd, path, sizeof path)) return real_pwrite(fd, buf, n, off);
    pthread_mutex_lock(&lock);
    record(fd, path, (uint64_t)off, n);
    ssize_t r = real_pwrite(fd, buf, n, off);
    pthread_mutex_unlock(&lock);
    return r;
}

ssize_t write(int fd, const void *buf, size_t n) {
    init();
    char path[PATH_MAX];
    if (fd <= 2 || !tracked(fd, path, sizeof path)) return real_write(fd, buf, n);
    pthread_mutex_lock(&lock);
    off_t off = lseek(fd, 0, SEEK_CUR);
    if (off < 0) abort();
    record(fd, path, (uint64_t)off, n);
    ssize_t r = real_write(fd, buf, n);
    pthread_mutex_unlock(&lock);
    return r;
}

static int truncate_at(int fd, uint64_t len, int wide) {
    char path[PATH_MAX];
    int t = tracked(fd, path, sizeof path);
    if (t) {
        pthread_mutex_lock(&lock);
        struct stat st;
        if (fstat(fd, &st) != 0) abort();
        uint64_t size = (uint64_t)st.st_size;
        /* Record the tail that goes (or nothing, when the file grows). */
        record(fd, path, len, size > len ? size - len : 0);
    }
    int r = wide ? real_ftruncate64(fd, (off64_t)len) : real_ftruncate(fd, (off_t)len);
    if (t) pthread_mutex_unlock(&lock);
    return r;
}

int ftruncate(int fd, off_t len) {
    init();
    return truncate_at(fd, (uint64_t)len, 0);
}

int ftruncate64(int fd, off64_t len) {
    init();
    return truncate_at(fd, (uint64_t)len, 1);
}

static int sync_fd(int fd, int data_only) {
    int r = data_only ? real_fdatasync(fd) : real_fsync(fd);
    char path[PATH_MAX];
    if (r == 0 && tracked(fd, path, sizeof path)) {
        pthread_mutex_lock(&lock);
        synced(path);
        pthread_mutex_unlock(&lock);
    }
    return r;
}

int fsync(int fd) {
    init();
    return sync_fd(fd, 0);
}

int fdatasync(int fd) {
    init();
    return sync_fd(fd, 1);
}
