/*
 * bench/runner: times child processes from a tiny static parent, so that neither the interpreter that
 * drives the benchmark nor its memory footprint shows up in the figures.
 *
 *   runner once IN OUT PROG [ARG...]
 *       Runs PROG once with stdin from file IN and stdout to file OUT (truncated), environment inherited.
 *       Prints "<wall ns> <peak RSS KiB> <exit status>" for the child (fork to wait4; the RSS is
 *       wait4's ru_maxrss, which also covers the child's own children, e.g. bridge's host-local).
 *
 *   runner par P N IN OUTDIR PREFIX PROG [ARG...]
 *       Runs PROG N times, at most P at a time, call i with CNI_CONTAINERID=PREFIXi and stdout to
 *       OUTDIR/i. Prints "<wall ns for all N> <number of non-zero exits>".
 *
 * Exit status 0 when the runner itself worked (the children's statuses are reported, not judged).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "runner: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Starts PROG with stdin/stdout redirected; id, when not NULL, becomes CNI_CONTAINERID. */
static pid_t start(const char *in, const char *out, char **argv, const char *id) {
    int fin = open(in, O_RDONLY | O_CLOEXEC);
    if (fin < 0) die(in);
    int fout = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fout < 0) die(out);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        if (dup2(fin, 0) < 0 || dup2(fout, 1) < 0) _exit(126);
        if (id != NULL && setenv("CNI_CONTAINERID", id, 1) != 0) _exit(126);
        execve(argv[0], argv, environ);
        _exit(127);
    }
    close(fin);
    close(fout);
    return pid;
}

static int status_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "once") == 0) {
        long long t0 = now_ns();
        pid_t pid = start(argv[2], argv[3], argv + 4, NULL);
        int status;
        struct rusage ru;
        if (wait4(pid, &status, 0, &ru) < 0) die("wait4");
        long long t1 = now_ns();
        printf("%lld %ld %d\n", t1 - t0, ru.ru_maxrss, status_code(status));
        return 0;
    }
    if (argc >= 8 && strcmp(argv[1], "par") == 0) {
        int p = atoi(argv[2]), n = atoi(argv[3]);
        const char *in = argv[4], *outdir = argv[5], *prefix = argv[6];
        char **prog = argv + 7;
        if (p < 1 || n < 1) {
            fprintf(stderr, "runner: P and N must be positive\n");
            return 2;
        }
        int running = 0, failures = 0, started = 0;
        long long t0 = now_ns();
        while (started < n || running > 0) {
            while (running < p && started < n) {
                char out[4096], id[256];
                snprintf(out, sizeof out, "%s/%d", outdir, started);
                snprintf(id, sizeof id, "%s%d", prefix, started);
                start(in, out, prog, id);
                started++;
                running++;
            }
            int status;
            if (wait(&status) < 0) die("wait");
            running--;
            if (status_code(status) != 0) failures++;
        }
        long long t1 = now_ns();
        printf("%lld %d\n", t1 - t0, failures);
        return 0;
    }
    fprintf(stderr,
            "usage: runner once IN OUT PROG [ARG...]\n"
            "       runner par P N IN OUTDIR PREFIX PROG [ARG...]\n");
    return 2;
}
