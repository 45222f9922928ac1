/*
 * A QEMU TCG plugin for `sprig profile --board jetson-qemu`: counts the guest instructions
 * qemu-aarch64 executes and prints the count at every getpid system call, which
 * `sprig-edge profile` makes on each side of the inferences it counts. Deterministic, unlike
 * qemu-user's emulated time.
 *
 * Built at profile time with the host's C compiler:
 *   cc -shared -fPIC -O2 -o insn_markers.so insn_markers.c
 * and loaded with `qemu-aarch64 -plugin ./insn_markers.so`. Declares the few functions of
 * QEMU's plugin API (version 1, QEMU 4.2 and later) it uses, so no QEMU headers are needed.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*syscall_cb)(qemu_plugin_id_t, unsigned int, int64_t, uint64_t, uint64_t,
                           uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *,
                                                     enum qemu_plugin_op, void *, uint64_t);
extern void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t, syscall_cb);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* aarch64 Linux's getpid. */
#define SYS_GETPID 172

static uint64_t executed;

/* Each translated block adds its instruction count when it starts. A system call ends a
 * block, so at one the count is exact. */
static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    (void)id, (void)vcpu, (void)a1, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7,
        (void)a8;
    if (num == SYS_GETPID) {
        fprintf(stderr, "insn-marker %" PRIu64 "\n", executed);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const struct qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info, (void)argc, (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    return 0;
}
