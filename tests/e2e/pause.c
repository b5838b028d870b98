/*
 * Minimal pod sandbox ("pause") process for the containerd end-to-end test.
 *
 * It only has to stay alive until the runtime stops it: it sleeps in
 * pause(2), reaps any children it inherits (it is PID 1 of the pod's PID
 * namespace), and exits 0 on SIGTERM or SIGINT. Built with `gcc -static`
 * so the image needs no libc.
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(void)
{
	struct sigaction stop, child;

	memset(&stop, 0, sizeof(stop));
	stop.sa_handler = on_stop;
	sigaction(SIGTERM, &stop, NULL);
	sigaction(SIGINT, &stop, NULL);

	memset(&child, 0, sizeof(child));
	child.sa_handler = on_child;
	child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	sigaction(SIGCHLD, &child, NULL);

	for (;;)
		pause();
}
