/* PID 1 of the initramfs that tests/tests/boards.rs boots under qemu-system-aarch64.
 *
 * Mounts devtmpfs (so the kernel's /dev/gpiochip0 appears), runs the command whose arguments
 * are the lines of /args with stdout and stderr on the console, prints its exit status and
 * powers the machine off. Built static with aarch64-linux-gnu-gcc, so it needs no libraries. */
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    static char buf[4096];
    char *args[32];
    int n = 0, status = -1;
    if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) != 0) perror("init: mount /dev");
    FILE *f = fopen("/args", "r");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[len] = 0;
    for (char *p = strtok(buf, "\n"); p && n < 31; p = strtok(NULL, "\n")) args[n++] = p;
    args[n] = NULL;
    if (n > 0) {
        pid_t pid = fork();
        if (pid == 0) {
            execv(args[0], args);
            perror("init: execv");
            _exit(127);
        }
        waitpid(pid, &status, 0);
    }
    printf("\ninit: exit status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
