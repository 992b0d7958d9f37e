/*
 * no-uring: runs a command with io_uring refused, as Docker's default seccomp
 * profile does since 25.0.  Installs a seccomp BPF filter that makes
 * io_uring_setup fail with EPERM and allows every other system call, then
 * execs the command.  Raw BPF (no libseccomp).
 *
 *   no-uring COMMAND [ARG...]
 *
 * Exits 127 when the filter cannot be installed or the command not run.
 * Linked with liblayersnap.a like every test tool: everything here is static.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "no-uring: unsupported architecture (x86_64 and aarch64 only)"
#endif

/* io_uring_setup is 425 in every architecture's table since Linux 5.1. */
#define NR_IO_URING_SETUP 425
/* x32 system calls arrive with AUDIT_ARCH_X86_64 and this bit set. */
#define X32_SYSCALL_BIT 0x40000000u

static int install_filter(void)
{
	struct sock_filter prog[] = {
		/* Another ABI than the native one: refuse outright, so the
		 * filter cannot be sidestepped through a compat table. */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_IO_URING_SETUP, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_IO_URING_SETUP | X32_SYSCALL_BIT, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
	};
	struct sock_fprog fprog = {
		.len = (unsigned short)(sizeof(prog) / sizeof(prog[0])),
		.filter = prog,
	};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		fprintf(stderr, "no-uring: PR_SET_NO_NEW_PRIVS: %s\n", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) {
		fprintf(stderr, "no-uring: PR_SET_SECCOMP: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs("usage: no-uring COMMAND [ARG...]\n", stderr);
		return 127;
	}
	if (install_filter() != 0)
		return 127;
	/* Self-check: the filter must be what refuses io_uring from here on. */
	if (syscall(NR_IO_URING_SETUP, 1, NULL) != -1 || errno != EPERM) {
		fprintf(stderr, "no-uring: io_uring_setup is not refused with EPERM\n");
		return 127;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "no-uring: %s: %s\n", argv[1], strerror(errno));
	return 127;
}
