/* Firmware main for the emulated Pico: a kernel benchmark, or a model run
 * through the Starmind runtime (see fw_protocol.h for the protocol). */
#include <stddef.h>
#include <stdint.h>
#include "fw_protocol.h"
#include "sm_kernels.h"

#define MARK(code) __asm volatile("bkpt %0" ::"i"(code) : "memory")

__attribute__((section(".results"), used)) volatile fw_result fw_res;
extern uint8_t __arena_start[], __arena_end[], __data_start[], __bss_end[];

static const fw_params *params(void) { return (const fw_params *)FW_PARAMS_ADDR; }

/* Kernel benchmark: each kernel over 4 rows of n weights, weights in SRAM and
 * in flash (the model area), activations in SRAM; then the weights-in-SRAM kernel of a model run over
 * 8 rows.  Each flash measurement
 * reads its own, never-touched 4n bytes, so it sees a cold XIP cache, as
 * weights streamed through a matrix-vector product do.  Marker pairs bracket
 * each measurement; the host divides by the MAC count.  Needs 20n bytes of
 * "model" data in flash. */
static void kernel_bench(uint32_t n)
{
    int8_t *x = (int8_t *)__arena_start;
    int8_t *wram = x + n;
    const int8_t *wflash = (const int8_t *)FW_MODEL_ADDR;
    volatile int32_t sink;
    int32_t out[4];
    for (uint32_t i = 0; i < n; i++)
        x[i] = (int8_t)(i * 37 + 11);
    for (uint32_t i = 0; i < 4 * n; i++)
        wram[i] = wflash[i];
    for (int s = 0; s < 2; s++) {
        /* s == 0: flash, a fresh region per kernel; s == 1: the SRAM copy */
        const int8_t *w0 = s ? wram : wflash + 4 * n, *w1 = s ? wram : wflash + 8 * n;
        const int8_t *w2 = s ? wram : wflash + 12 * n, *w3 = s ? wram : wflash + 16 * n;
        MARK(FW_MARK_BENCH_START);
        for (int r = 0; r < 4; r++)
            sink = sm_dot_i8_plain(x, w0 + r * n, (int32_t)n);
        MARK(FW_MARK_BENCH_END);
        MARK(FW_MARK_BENCH_START);
        for (int r = 0; r < 4; r++)
            sink = sm_dot_i8_unroll4(x, w1 + r * n, (int32_t)n);
        MARK(FW_MARK_BENCH_END);
        MARK(FW_MARK_BENCH_START);
        sm_dot4_i8_c(x, w2, (int32_t)n, (int32_t)n, out);
        MARK(FW_MARK_BENCH_END);
        MARK(FW_MARK_BENCH_START);
        sm_dot4_i8(x, w3, (int32_t)n, (int32_t)n, out);
        MARK(FW_MARK_BENCH_END);
        fw_res.out[s * 4 + 0] = (uint32_t)out[0];
        fw_res.out[s * 4 + 1] = (uint32_t)out[1];
        fw_res.out[s * 4 + 2] = (uint32_t)out[2];
        fw_res.out[s * 4 + 3] = (uint32_t)out[3];
    }
    /* The weights-in-SRAM kernel of a model run (sm_linK_i8, SM_LIN_LOGIT, one block of 8 rows): the rows
     * interleaved column by column as unsigned bytes, the activations widened to int32, the requantisation
     * an identity (m = 32768, s = 0); 8n MACs. */
    uintptr_t at = ((uintptr_t)(wram + 4 * n) + 3) & ~(uintptr_t)3;
    int32_t *x32 = (int32_t *)at, *rq = x32 + n, *out8 = rq + 16;
    uint8_t *w8 = (uint8_t *)(out8 + 8);
    int32_t xsum = 0;
    for (uint32_t i = 0; i < n; i++) {
        x32[i] = x[i];
        xsum += x[i];
    }
    for (int r = 0; r < 8; r++) {
        rq[2 * r] = 32768;
        rq[2 * r + 1] = 0;
        for (uint32_t i = 0; i < n; i++) w8[8 * i + (uint32_t)r] = (uint8_t)(wflash[(uint32_t)r * n + i] + 128);
    }
    MARK(FW_MARK_BENCH_START);
    sm_linK_i8(SM_LIN_LOGIT, 8, x32, w8, (int32_t)n, out8, 1, rq, (const int8_t *)0, -128 * xsum, 0);
    MARK(FW_MARK_BENCH_END);
    for (int r = 0; r < 4; r++) fw_res.out[8 + r] = (uint32_t)out8[r];
    (void)sink;
    fw_res.n_out = 12;
}

int fw_generate(const fw_params *p, volatile fw_result *res, uint8_t *arena, size_t arena_size);
void sm_rom_float_init(void);

int main(void)
{
    const fw_params *p = params();
    sm_rom_float_init();
    fw_res.magic = FW_RESULT_MAGIC;
    fw_res.arena_size = (uint32_t)(__arena_end - __arena_start);
    fw_res.static_bytes = (uint32_t)(__bss_end - (uint8_t *)0x20000000);
    if (p->magic != FW_PARAMS_MAGIC) {
        fw_res.status = -100;
        return 0;
    }
    if (p->command == FW_CMD_KERNEL_BENCH) {
        kernel_bench(p->bench_n);
        fw_res.status = 0;
    } else if (p->command == FW_CMD_GENERATE) {
        fw_res.status = fw_generate(p, &fw_res, __arena_start, fw_res.arena_size);
    } else {
        fw_res.status = -101;
    }
    return 0;
}
