/*
 * Sandbox ("pause") process for the chaosfleet lab.
 *
 * Real kubelet nodes run one pause process per pod; the lab runs this one so a
 * sandbox container's comm is "pause" too. It sleeps in pause(), reaps any
 * children it inherits as PID 1 of its PID namespace, and exits 0 on
 * SIGINT/SIGTERM.
 *
 * Build: gcc -static -Os -o pause pause.c
 */
#include <signal.h>
#include <stdlib.h>
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
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

static void install(int sig, void (*handler)(int))
{
    struct sigaction action;

    memset(&action, 0, sizeof(action));
    action.sa_handler = handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(sig, &action, NULL) != 0)
        exit(1);
}

int main(void)
{
    install(SIGINT, on_stop);
    install(SIGTERM, on_stop);
    install(SIGCHLD, on_child);
    for (;;)
        pause();
    return 0;
}
