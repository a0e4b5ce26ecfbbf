/* The pod sandbox's process: holds the pod's namespaces open and does nothing else.
 *
 * containerd starts one per pod (its `sandbox_image`). No registry is reachable here, so
 * the image is built from this file: `gcc -static -Os -o pause pause.c`. PID 1 of the pod
 * must reap the zombies of processes that share its PID namespace, and exit on SIGINT or
 * SIGTERM, which is all this does. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) {
    (void)signo;
    _exit(0);
}

static void reap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction on_stop = {.sa_handler = stop};
    struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &on_stop, NULL) < 0 || sigaction(SIGTERM, &on_stop, NULL) < 0 ||
        sigaction(SIGCHLD, &on_child, NULL) < 0) {
        return 1;
    }
    for (;;) {
        pause();
    }
}
