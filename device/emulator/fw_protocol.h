/* What the harness (harness.mjs) and the firmware (fw_main.c) exchange.
 *
 * Run parameters: a block of little-endian u32 words in flash at FW_PARAMS_ADDR,
 * written by the harness before reset.  Results: struct fw_result at the start
 * of SRAM (0x20000000), read by the harness when the firmware stops.
 * Progress markers are BKPT instructions; the harness records the cycle counter
 * at each one.
 */
#ifndef FW_PROTOCOL_H
#define FW_PROTOCOL_H
#include <stdint.h>

#define FW_PARAMS_ADDR 0x10020000u
#define FW_MODEL_ADDR  0x10021000u
#define FW_PARAMS_MAGIC 0x50524D53u /* "SMRP" */
#define FW_RESULT_MAGIC 0x53524D53u /* "SMRS" */

enum fw_command { FW_CMD_KERNEL_BENCH = 1, FW_CMD_GENERATE = 2 };
enum fw_flags { FW_WEIGHTS_IN_SRAM = 1, FW_NO_KV_CACHE = 2, FW_WINDOW = 4 };

typedef struct {
    uint32_t magic, command, flags, model_size;
    uint32_t n_prompt, n_gen, seed, temperature_q8;
    uint32_t top_k, bench_n, reserved[6];
    uint32_t prompt[]; /* n_prompt token ids */
} fw_params;

/* BKPT immediates */
#define FW_MARK_LOAD_START 0x01
#define FW_MARK_LOAD_DONE 0x02
#define FW_MARK_PREFILL_DONE 0x03
#define FW_MARK_TOKEN 0x04
#define FW_MARK_BENCH_START 0x10
#define FW_MARK_BENCH_END 0x11
#define FW_MARK_DONE 0x7f
#define FW_MARK_FAULT 0x7e

#define FW_MAX_OUT 2048
typedef struct {
    uint32_t magic;
    int32_t status;          /* 0 ok, else a starmind error code */
    uint32_t n_out;
    uint32_t arena_size;     /* bytes available to the runtime */
    uint32_t arena_used;     /* bytes the model needed */
    uint32_t static_bytes;   /* .data + .bss + this block */
    uint32_t logits_addr;    /* int32 logits of the current step (valid at markers) */
    uint32_t n_logits;
    uint32_t current_token;  /* last sampled token (valid at FW_MARK_TOKEN) */
    uint32_t reserved[7];    /* [0]: 1 when the logits are float32 */
    uint32_t out[FW_MAX_OUT];
} fw_result;

#endif
