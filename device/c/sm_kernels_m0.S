/* Cortex-M0+ (ARMv6-M Thumb) int8 kernels.
 *
 * sm_dot4_i8_m0(x, w, n, stride, out): out[r] = sum_i x[i] * w[r*stride + i], r = 0..3.
 * The inner loop loads x[i] once and reuses it for four rows; the indices run
 * from -n up to 0 against end pointers so one ADDS sets the loop flag:
 *     ldrsb x (2) + 4 x (ldrsb w (2) + muls (1) + add hi (1)) + adds (1) + bne (2)
 *   = 21 cycles per 4 MACs = 5.25 cycles/MAC (the RP2040's multiplier is single cycle).
 * The four accumulators live in the high registers r8-r11 (ADD to a high
 * register takes any register and one cycle), which leaves r0-r7 for the five
 * base pointers, the index, the activation and the product.
 */
    .syntax unified
    .cpu cortex-m0plus
    .thumb
    .section .time_critical.sm_dot4_i8_m0, "ax", %progbits
    .global sm_dot4_i8_m0
    .type sm_dot4_i8_m0, %function
    .thumb_func
sm_dot4_i8_m0:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
    push {r4-r7}
    movs r6, #0
    mov r8, r6
    mov r9, r6
    mov r10, r6
    mov r11, r6
    cmp r2, #0
    ble .Ldone
    adds r0, r0, r2         /* x end */
    adds r1, r1, r2         /* row 0 end */
    mov r7, r3              /* stride */
    adds r3, r1, r7         /* row 1 end */
    adds r4, r3, r7         /* row 2 end */
    adds r5, r4, r7         /* row 3 end */
    rsbs r2, r2, #0         /* i = -n */
.Lloop:
    ldrsb r6, [r0, r2]
    ldrsb r7, [r1, r2]
    muls r7, r6
    add r8, r7
    ldrsb r7, [r3, r2]
    muls r7, r6
    add r9, r7
    ldrsb r7, [r4, r2]
    muls r7, r6
    add r10, r7
    ldrsb r7, [r5, r2]
    muls r7, r6
    add r11, r7
    adds r2, r2, #1
    bne .Lloop
.Ldone:
    ldr r0, [sp, #36]       /* out (5th argument, above the 9 saved words) */
    mov r1, r8
    str r1, [r0, #0]
    mov r1, r9
    str r1, [r0, #4]
    mov r1, r10
    str r1, [r0, #8]
    mov r1, r11
    str r1, [r0, #12]
    pop {r4-r7}
    mov r8, r4
    mov r9, r5
    mov r10, r6
    mov r11, r7
    pop {r4-r7, pc}
    .size sm_dot4_i8_m0, . - sm_dot4_i8_m0


/* Whole matrices: LINEAR4 name, mode: name(x, w, n, stride, out, n_groups, rq, lut), n >= 1, n_groups >= 1.
 * For the rows r = 4g .. 4g+3 of each group g < n_groups:
 *     acc[r] = sum_i x[i] * w[r * stride + i]
 * mode 0 (sm_qk4_i8_m0, rq unused):       out (int32) [r] = acc[r]
 * mode 1 (sm_linact4_i8_m0, LINEAR_ACT):   out (int8)  [r] = clamp(REQUANT(acc[r], rq[2r], rq[2r+1]), -127, 127)
 * mode 2 (sm_linres4_i8_m0, LINEAR_RES):   out (int32) [r] = clamp(out[r] + REQUANT(...), -32767, 32767)
 * mode 3 (sm_linlogit4_i8_m0, logits):     out (int32) [r] = clamp(REQUANT(...), -2^29, 2^29)
 * mode 4 (sm_linactlut4_i8_m0, FFN W1):    out (int8)  [r] = lut[128 + clamp(REQUANT(...), -127, 127)]
 * The dot4 loop above, unrolled four times (n mod 4 picks the copy to enter),
 * with the loop over row groups and the requantisation (FORMAT.md 6.1) inside:
 *   per 4 columns x 4 rows: 4 x (ldrsb x + 4 x (ldrsb + muls + add) + adds) + bne = 78 cycles
 *   = 4.875 cycles/MAC (the first column of a group sets the sums instead of zeroing them),
 *   plus about 20 cycles per group of 4 rows and about 23 (mode 1) to 35 (mode 2) cycles per
 *   row for the requantisation.
 * Registers in the loop: r0 x end, r1/r3/r4/r5 the ends of the 4 rows, r2 the index
 * (-n .. 0), r6 x[i], r7 the product, r8-r11 the 4 sums; r12 out, lr the end of rq (of out in
 * mode 0), where the loop over groups stops; on the stack: -n, stride, rq, lut. */
    .macro MAC4COL
    ldrsb r6, [r0, r2]
    ldrsb r7, [r1, r2]
    muls r7, r6
    add r8, r7
    ldrsb r7, [r3, r2]
    muls r7, r6
    add r9, r7
    ldrsb r7, [r4, r2]
    muls r7, r6
    add r10, r7
    ldrsb r7, [r5, r2]
    muls r7, r6
    add r11, r7
    adds r2, r2, #1
    .endm

    /* r6 = REQUANT(acc, m, s) = RSHR(floor(acc * m / 2^15), s) with (m, s) from [r2], r2 += 8;
     * RSHR(t, s) = (t + ((1 << s) >> 1)) >> s = ((2t >> s) + 1) >> 1 (floor(floor(y) / 2) = floor(y / 2);
     * 2t fits: REQUANT is only applied to |acc| < 2^29, FORMAT.md 6.1).  Uses r4, r5, r7. */
    .macro REQUANT acc, ld=0
    .if \ld
    ldr r6, [sp, #\acc]
    .else
    mov r6, \acc
    .endif
    ldm r2!, {r4, r5}
    asrs r7, r6, #15
    muls r7, r4
    lsls r6, r6, #17
    lsrs r6, r6, #17
    muls r6, r4
    lsrs r6, r6, #15
    adds r6, r6, r7                  /* t = floor(acc * m / 2^15), |t| < 2^30 */
    lsls r6, r6, #1
    asrs r6, r5
    adds r6, r6, #1
    asrs r6, r6, #1                  /* RSHR(t, s) = ((2t >> s) + 1) >> 1 */
    .endm

    .macro STORE_ACT acc, k, mode, ld=0, lutoff=12   /* out int8 at r3; mode 4: then through the table at [sp, #lutoff] */
    REQUANT \acc, \ld
    movs r7, r6
    adds r7, #127
    cmp r7, #254                     /* v + 127 in [0, 254]: no clamp */
    bls 1f
    movs r6, #127
    cmp r7, #0
    bgt 1f
    negs r6, r6
1:
    .if \mode == 4
    ldr r4, [sp, #\lutoff]
    adds r6, #128
    ldrsb r6, [r4, r6]
    .endif
    .if \mode == 5                  /* biased: v + 128 as an unsigned byte */
    adds r6, #128
    .endif
    strb r6, [r3, #\k]
    .endm

    .macro STORE_RES acc, k, ld=0    /* out int32 at r3 */
    REQUANT \acc, \ld
    ldr r7, [r3, #4 * \k]
    adds r6, r6, r7
    movs r4, #128
    lsls r4, r4, #8
    subs r4, r4, #1                  /* 32767 */
    cmp r6, r4
    ble 1f
    movs r6, r4
1:  cmn r6, r4
    bge 2f
    negs r6, r4
2:  str r6, [r3, #4 * \k]
    .endm

    .macro STORE_LOGIT acc, k, ld=0  /* out int32 at r3 */
    REQUANT \acc, \ld
    asrs r7, r6, #29
    adds r7, r7, #1
    cmp r7, #1                       /* v in [-2^29, 2^29): no clamp */
    bls 2f
    movs r4, #1
    lsls r4, r4, #29
    cmp r6, r4
    ble 1f
    movs r6, r4
1:  negs r4, r4
    cmp r6, r4
    bge 2f
    movs r6, r4
2:  str r6, [r3, #4 * \k]
    .endm

    .macro LINEAR4 name, mode
    .section .time_critical.\name, "ax", %progbits
    .global \name
    .type \name, %function
    .thumb_func
\name:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
    push {r4-r7}
    ldr r4, [sp, #36]       /* out */
    mov r12, r4
    ldr r5, [sp, #40]       /* n_groups */
    .if \mode == 0
    lsls r5, r5, #4
    adds r5, r4, r5         /* the end of out: 4 int32 per group */
    .else
    ldr r6, [sp, #44]       /* rq */
    lsls r5, r5, #5
    adds r5, r6, r5         /* the end of rq: 4 (m, s) pairs per group */
    .endif
    mov lr, r5              /* the loop ends when out (mode 0) or rq reaches it */
    ldr r4, [sp, #48]       /* act_lut (mode 4) */
    sub sp, #16
    str r4, [sp, #12]
    ldr r4, [sp, #60]       /* rq */
    rsbs r5, r2, #0
    str r5, [sp, #0]        /* -n */
    str r3, [sp, #4]        /* stride */
    str r4, [sp, #8]        /* rq (advances) */
    adds r0, r0, r2         /* x end */
    adds r1, r1, r2         /* row 0 end of the first group */
10: /* a group of 4 rows: r1 = its row 0 end */
    ldr r7, [sp, #4]
    adds r3, r1, r7         /* row 1 end */
    adds r4, r3, r7         /* row 2 end */
    adds r5, r4, r7         /* row 3 end */
    ldr r2, [sp, #0]        /* i = -n */
    /* the first column sets the 4 sums (no zeroing) */
    ldrsb r6, [r0, r2]
    ldrsb r7, [r1, r2]
    muls r7, r6
    mov r8, r7
    ldrsb r7, [r3, r2]
    muls r7, r6
    mov r9, r7
    ldrsb r7, [r4, r2]
    muls r7, r6
    mov r10, r7
    ldrsb r7, [r5, r2]
    muls r7, r6
    mov r11, r7
    adds r2, r2, #1
    beq \name\()_store      /* n == 1 */
    lsls r6, r2, #31        /* enter at copy j = i mod 4: C = bit 1 of j, N = bit 0 of j */
    bcs 17f
    bmi 12f
    b 11f
17: bpl 13f
    b 14f
11: MAC4COL                 /* the first three copies never reach i = 0 */
12: MAC4COL
13: MAC4COL
14: MAC4COL
    bne 11b
    .size \name, . - \name
    /* the rest has its own symbol, so that a cycle profile tells the dot products
     * (above) from the requantisation and stores (below) */
    .type \name\()_store, %function
\name\()_store:
    ldr r7, [sp, #4]
    adds r1, r5, r7         /* the next group's row 0 end */
    mov r3, r12
    .if \mode == 0
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
    stmia r3!, {r4-r7}
    mov r12, r3
    cmp r3, lr
    .else
    ldr r2, [sp, #8]
    .if \mode == 1 || \mode == 4
    STORE_ACT r8, 0, \mode
    STORE_ACT r9, 1, \mode
    STORE_ACT r10, 2, \mode
    STORE_ACT r11, 3, \mode
    adds r3, r3, #4
    .elseif \mode == 2
    STORE_RES r8, 0
    STORE_RES r9, 1
    STORE_RES r10, 2
    STORE_RES r11, 3
    adds r3, r3, #16
    .else
    STORE_LOGIT r8, 0
    STORE_LOGIT r9, 1
    STORE_LOGIT r10, 2
    STORE_LOGIT r11, 3
    adds r3, r3, #16
    .endif
    str r2, [sp, #8]
    mov r12, r3
    cmp r2, lr
    .endif
    beq 19f
    b 10b
19:
    add sp, #16
    pop {r4-r7}
    mov r8, r4
    mov r9, r5
    mov r10, r6
    mov r11, r7
    pop {r4-r7, pc}
    .size \name\()_store, . - \name\()_store
    .endm

    LINEAR4 sm_qk4_i8_m0, 0
    LINEAR4 sm_linact4_i8_m0, 1
    LINEAR4 sm_linres4_i8_m0, 2
    LINEAR4 sm_linlogit4_i8_m0, 3
    LINEAR4 sm_linactlut4_i8_m0, 4

/* Blocks of K = 8, 4, 2 or 1 rows (weights in SRAM, sm_linK_i8 of sm_kernels.h): LINEARK name, mode, K:
 * name(x, w, n, out, n_groups, rq, lut, bias, tail), n >= 1, n_groups >= 1, x int32 (the activations widened by
 * sm_widen_i8), w[K g n + K i + j] = W[Kg + j][i] + 128 (unsigned), mode 1, 2, 3, 4 of LINEAR4 or 5
 * (SM_LIN_ACTB: mode 1's value + 128).  The K sums start at bias = -128 sum_i x[i] (the bias of
 * the weights); one activation load serves K rows whose bytes are adjacent.
 * Four rows' bytes of one column load as one word U = u0 + 2^8 u1 + 2^16 u2 + 2^24 u3, and the loop
 * keeps four sums of x times U shifted right by 0, 8, 16 and 24 bits (exact, mod 2^32):
 *   E1 = S0 + 2^8 E2,  E2 = S1 + 2^8 E3,  E3 = S2 + 2^8 E4,  E4 = S3   (S_j = sum_i x[i] u_j[i]),
 * so after the loop S3 = E4, S2 = E3 - 2^8 E4, S1 = E2 - 2^8 E3, S0 = E1 - 2^8 E2 exactly (every S_j fits
 * int32).  Per word: ldr + 3 lsrs + 4 (muls + add) = 13 cycles for 4 MACs; K = 2 loads a halfword.
 *   K = 8, per 4 columns x 8 rows: 4 x (ldr + 2 x 13) + 2 adds + cmp + bne = 117 cycles
 *   = 3.66 cycles/MAC (n mod 4 picks the copy to enter; the pointers start that many
 *   columns early).  The sums start at E4 = b, E3 = b + 2^8 b, E2 = b + 2^8 E3, E1 = b + 2^8 E2,
 *   so that every S_j starts at the bias b.
 * Then tail (0..7) more rows after the blocks, in one block each of 4, 2, 1 rows as tail asks: the code of
 * the same mode for that K (the same section and frame) takes over.
 * Registers in the loop: r0 x (advances), r1 w (advances), r2-r4, r8 the sums E1-E4 of rows 0-3 and r9-r12
 * those of rows 4-7, r5 and r7 the shifted words and products, r6 x[i], lr the end of x; on the stack:
 * x - pre, pre (= -n mod 4), out, rq (both advance), the end of rq, lut, tail, the starts of E1-E4. */
    .macro ACC reg, src
    .ifc \reg, r2
    adds r2, r2, \src
    .else
    .ifc \reg, r3
    adds r3, r3, \src
    .else
    .ifc \reg, r4
    adds r4, r4, \src
    .else
    add \reg, \src
    .endif
    .endif
    .endif
    .endm

    .macro MACW off, e1, e2, e3, e4   /* four rows of one column: the word at [r1, #off] times x[i] (r6) */
    ldr r7, [r1, #\off]
    lsrs r5, r7, #8
    muls r7, r6
    ACC \e1, r7
    lsrs r7, r5, #8
    muls r5, r6
    ACC \e2, r5
    lsrs r5, r7, #8
    muls r7, r6
    ACC \e3, r7
    muls r5, r6
    ACC \e4, r5
    .endm

    .macro COLK j, K
    ldr r6, [r0, #4 * \j]
    .if \K == 8
    MACW 8 * \j, r2, r3, r4, r8
    MACW 8 * \j + 4, r9, r10, r11, r12
    .elseif \K == 4
    MACW 4 * \j, r2, r3, r4, r8
    .elseif \K == 2
    ldrh r7, [r1, #2 * \j]
    lsrs r5, r7, #8
    muls r7, r6
    adds r2, r2, r7
    muls r5, r6
    adds r3, r3, r5
    .else
    ldrb r7, [r1, #\j]
    muls r7, r6
    adds r2, r2, r7
    .endif
    .endm

    /* The stores of LINEARK: r0 holds 127 (modes 1, 4, 5) or 32767 (mode 2); a value out of range
     * branches (not taken: 1 cycle) to its row's stub (label 6k, placed out of line by STUBS), which
     * clamps it and comes back to label 5k.  d: the stubs' direction (f: after the row, b: before). */
    .macro STOREK mode, acc, k, ld, d
    .if \mode == 1 || \mode == 4 || \mode == 5
    REQUANT \acc, \ld
    adds r7, r6, r0                  /* v + 127 in [0, 254]: no clamp */
    cmp r7, #254
    bhi 6\k\d
5\k:
    .if \mode == 4
    mov r4, r12                      /* lut + 128 */
    ldrsb r6, [r4, r6]
    .endif
    .if \mode == 5
    adds r6, #128
    .endif
    strb r6, [r3, #\k]
    .elseif \mode == 2
    REQUANT \acc, \ld
    ldr r7, [r3, #4 * \k]
    adds r6, r6, r7
    cmp r6, r0
    bgt 6\k\d
    cmn r6, r0
    blt 6\k\d
5\k:
    str r6, [r3, #4 * \k]
    .else
    STORE_LOGIT \acc, \k, \ld
    .endif
    .endm

    .macro STUB mode, k, d           /* d: the direction back to the row */
6\k:
    .if \mode == 2
    cmp r6, #0
    mov r6, r0
    bgt 5\k\d
    negs r6, r0
    b 5\k\d
    .elseif \mode != 3
    movs r6, #127
    cmp r7, #0
    bgt 5\k\d
    negs r6, r6
    b 5\k\d
    .endif
    .endm

    .macro STUBS mode, nrows, d
    .if \mode != 3
    b 70f
    .irp kk, 0, 1, 2, 3, 4, 5, 6, 7
    .if \kk < \nrows
    .if \kk < 4
    STUB \mode, \kk, b
    .else
    STUB \mode, \kk, f
    .endif
    .endif
    .endr
70:
    .endif
    .endm

    .macro LINEARK name, mode, K, sec, n4, n2, n1
    .section .time_critical.\sec, "ax", %progbits
    .global \name
    .type \name, %function
    .thumb_func
\name:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
    push {r4-r7}
    lsls r5, r2, #2
    adds r5, r0, r5
    mov lr, r5              /* the end of x */
    sub sp, #44
    ldr r4, [sp, #96]       /* tail */
    str r4, [sp, #24]
    ldr r4, [sp, #92]       /* bias b: the starts of E4, E3, E2, E1 */
    str r4, [sp, #40]
    lsls r5, r4, #8
    adds r5, r5, r4
    str r5, [sp, #36]
    lsls r5, r5, #8
    adds r5, r5, r4
    str r5, [sp, #32]
    lsls r5, r5, #8
    adds r5, r5, r4
    str r5, [sp, #28]
    rsbs r6, r2, #0
    movs r7, #3
    ands r6, r7             /* pre = -n mod 4 */
    str r6, [sp, #4]
    lsls r7, r6, #2
    subs r7, r0, r7
    str r7, [sp, #0]        /* x - pre (int32) */
    str r3, [sp, #8]        /* out */
    ldr r4, [sp, #84]       /* rq */
    str r4, [sp, #12]
    ldr r5, [sp, #80]       /* n_groups */
    .if \K == 8
    lsls r5, r5, #6
    .elseif \K == 4
    lsls r5, r5, #5
    .elseif \K == 2
    lsls r5, r5, #4
    .else
    lsls r5, r5, #3
    .endif
    adds r5, r4, r5
    str r5, [sp, #16]       /* the end of rq: K (m, s) pairs per group */
    ldr r5, [sp, #88]
    adds r5, #128
    str r5, [sp, #20]       /* lut + 128 */
    b 10f
17: bpl 13f                 /* pre = 2 or 3 (from the dispatch below) */
    b 14f
\name\()_blk:
10: /* a block of K rows: r1 = its start */
    ldr r0, [sp, #0]
    ldr r6, [sp, #4]
    .if \K == 8
    lsls r7, r6, #3
    .elseif \K == 4
    lsls r7, r6, #2
    .elseif \K == 2
    lsls r7, r6, #1
    .else
    movs r7, r6
    .endif
    subs r1, r1, r7
    .if \K >= 4
    ldr r2, [sp, #28]
    ldr r3, [sp, #32]
    ldr r4, [sp, #36]
    ldr r5, [sp, #40]
    mov r8, r5
    .if \K == 8
    mov r9, r2
    mov r10, r3
    mov r11, r4
    mov r12, r5
    .endif
    .elseif \K == 2
    ldr r2, [sp, #36]
    ldr r3, [sp, #40]
    .else
    ldr r2, [sp, #40]
    .endif
    lsls r6, r6, #31        /* enter at copy pre: C = bit 1, N = bit 0 */
    bcs 17b
    bmi 12f
11: COLK 0, \K
12: COLK 1, \K
13: COLK 2, \K
14: COLK 3, \K
    adds r0, r0, #16
    adds r1, r1, #4 * \K
    cmp r0, lr
    bne 11b
    /* the dot products S_j from E1-E4: rows 0-3 into r2-r5, rows 4-7 into r8-r11 (r1, the next block, is kept) */
    .if \K >= 2
    lsls r5, r3, #8
    subs r2, r2, r5         /* S0 = E1 - 2^8 E2 */
    .endif
    .if \K >= 4
    lsls r5, r4, #8
    subs r3, r3, r5         /* S1 = E2 - 2^8 E3 */
    mov r5, r8
    lsls r6, r5, #8
    subs r4, r4, r6         /* S2 = E3 - 2^8 E4; S3 = E4 in r5 */
    .endif
    .if \K == 8
    mov r6, r9
    mov r7, r10
    lsls r0, r7, #8
    subs r6, r6, r0
    mov r8, r6              /* S4 */
    mov r6, r11
    lsls r0, r6, #8
    subs r7, r7, r0
    mov r9, r7              /* S5 */
    mov r7, r12
    lsls r0, r7, #8
    subs r6, r6, r0
    mov r10, r6             /* S6 */
    mov r11, r7             /* S7 */
    .endif
    .size \name, . - \name
    .type \name\()_store, %function
\name\()_store:
    .if \mode == 4
    ldr r7, [sp, #20]
    mov r12, r7             /* lut + 128 for the stores */
    .endif
    push {r2-r5}            /* sums 0-3 at [sp, #0..12]; the frame above them */
    ldr r2, [sp, #28]       /* rq */
    ldr r3, [sp, #24]       /* out */
    .if \mode == 2
    movs r0, #128
    lsls r0, r0, #8
    subs r0, r0, #1         /* 32767 */
    .else
    movs r0, #127
    .endif
    STOREK \mode, 0, 0, 1, f
    .if \K >= 2
    STOREK \mode, 4, 1, 1, f
    .endif
    .if \K >= 4
    STOREK \mode, 8, 2, 1, f
    STOREK \mode, 12, 3, 1, f
    .endif
    .if \K >= 8
    STUBS \mode, 8, b
    STOREK \mode, r8, 4, 0, b
    STOREK \mode, r9, 5, 0, b
    STOREK \mode, r10, 6, 0, b
    STOREK \mode, r11, 7, 0, b
    .else
    STUBS \mode, \K, b
    .endif
    .if \mode == 1 || \mode == 4 || \mode == 5
    adds r3, r3, #\K
    .else
    adds r3, r3, #4 * \K
    .endif
    add sp, #16
    str r3, [sp, #8]
    str r2, [sp, #12]
    ldr r7, [sp, #16]
    cmp r2, r7
    beq 19f
    b 10b
19: /* the tail: the rows after the blocks, in blocks of 4, 2 and 1 of the same mode (same frame) */
    ldr r6, [sp, #24]
    cmp r6, #0
    beq 23f
    ldr r7, [sp, #16]
    .if \K > 4
    cmp r6, #4
    blo 21f
    subs r6, r6, #4
    adds r7, r7, #32
    str r6, [sp, #24]
    str r7, [sp, #16]
    b \n4\()_blk
21:
    .endif
    .if \K > 2
    cmp r6, #2
    blo 22f
    subs r6, r6, #2
    adds r7, r7, #16
    str r6, [sp, #24]
    str r7, [sp, #16]
    b \n2\()_blk
22:
    .endif
    .if \K > 1
    cmp r6, #1
    blo 23f
    subs r6, r6, #1
    adds r7, r7, #8
    str r6, [sp, #24]
    str r7, [sp, #16]
    b \n1\()_blk
    .endif
23:
    add sp, #44
    pop {r4-r7}
    mov r8, r4
    mov r9, r5
    mov r10, r6
    mov r11, r7
    pop {r4-r7, pc}
    .size \name\()_store, . - \name\()_store
    .endm

    LINEARK sm_linact8_i8_m0, 1, 8, sm_linact_m0, sm_linact4x_i8_m0, sm_linact2_i8_m0, sm_linact1_i8_m0
    LINEARK sm_linact4x_i8_m0, 1, 4, sm_linact_m0, sm_linact4x_i8_m0, sm_linact2_i8_m0, sm_linact1_i8_m0
    LINEARK sm_linact2_i8_m0, 1, 2, sm_linact_m0, sm_linact4x_i8_m0, sm_linact2_i8_m0, sm_linact1_i8_m0
    LINEARK sm_linact1_i8_m0, 1, 1, sm_linact_m0, sm_linact4x_i8_m0, sm_linact2_i8_m0, sm_linact1_i8_m0
    LINEARK sm_linres8_i8_m0, 2, 8, sm_linres_m0, sm_linres4x_i8_m0, sm_linres2_i8_m0, sm_linres1_i8_m0
    LINEARK sm_linres4x_i8_m0, 2, 4, sm_linres_m0, sm_linres4x_i8_m0, sm_linres2_i8_m0, sm_linres1_i8_m0
    LINEARK sm_linres2_i8_m0, 2, 2, sm_linres_m0, sm_linres4x_i8_m0, sm_linres2_i8_m0, sm_linres1_i8_m0
    LINEARK sm_linres1_i8_m0, 2, 1, sm_linres_m0, sm_linres4x_i8_m0, sm_linres2_i8_m0, sm_linres1_i8_m0
    LINEARK sm_linlogit8_i8_m0, 3, 8, sm_linlogit_m0, sm_linlogit4x_i8_m0, sm_linlogit2_i8_m0, sm_linlogit1_i8_m0
    LINEARK sm_linlogit4x_i8_m0, 3, 4, sm_linlogit_m0, sm_linlogit4x_i8_m0, sm_linlogit2_i8_m0, sm_linlogit1_i8_m0
    LINEARK sm_linlogit2_i8_m0, 3, 2, sm_linlogit_m0, sm_linlogit4x_i8_m0, sm_linlogit2_i8_m0, sm_linlogit1_i8_m0
    LINEARK sm_linlogit1_i8_m0, 3, 1, sm_linlogit_m0, sm_linlogit4x_i8_m0, sm_linlogit2_i8_m0, sm_linlogit1_i8_m0
    LINEARK sm_linactlut8_i8_m0, 4, 8, sm_linactlut_m0, sm_linactlut4x_i8_m0, sm_linactlut2_i8_m0, sm_linactlut1_i8_m0
    LINEARK sm_linactlut4x_i8_m0, 4, 4, sm_linactlut_m0, sm_linactlut4x_i8_m0, sm_linactlut2_i8_m0, sm_linactlut1_i8_m0
    LINEARK sm_linactlut2_i8_m0, 4, 2, sm_linactlut_m0, sm_linactlut4x_i8_m0, sm_linactlut2_i8_m0, sm_linactlut1_i8_m0
    LINEARK sm_linactlut1_i8_m0, 4, 1, sm_linactlut_m0, sm_linactlut4x_i8_m0, sm_linactlut2_i8_m0, sm_linactlut1_i8_m0
    LINEARK sm_linactb8_i8_m0, 5, 8, sm_linactb_m0, sm_linactb4x_i8_m0, sm_linactb2_i8_m0, sm_linactb1_i8_m0
    LINEARK sm_linactb4x_i8_m0, 5, 4, sm_linactb_m0, sm_linactb4x_i8_m0, sm_linactb2_i8_m0, sm_linactb1_i8_m0
    LINEARK sm_linactb2_i8_m0, 5, 2, sm_linactb_m0, sm_linactb4x_i8_m0, sm_linactb2_i8_m0, sm_linactb1_i8_m0
    LINEARK sm_linactb1_i8_m0, 5, 1, sm_linactb_m0, sm_linactb4x_i8_m0, sm_linactb2_i8_m0, sm_linactb1_i8_m0

    .macro MACK reg, off             /* one byte of [r1, #off] times r6 into reg (r7: the product) */
    ldrb r7, [r1, #\off]
    muls r7, r6
    ACC \reg, r7
    .endm

/* WSUMK name, K (K = 8, 4, 2 or 1): name(p, v, n_pos, stride, out, n_groups, bias), n_pos >= 1, n_groups >= 1:
 * int32 out[Kg + j] = RSHR(bias + sum_s p[s] * v[s * stride + Kg + j], 15) for g < n_groups, j < K (values of
 * int8: the attention output widened for sm_linK_i8), returns the sum of the outputs (their bias)
 * (p int32, v unsigned bytes: the attention's cached values biased by 128 with weights in SRAM,
 * bias = -128 sum_s p[s]): K value columns per probability load, their bytes adjacent.  Unrolled
 * twice (an odd n_pos enters at the second copy):
 *   K = 8, per position: ldm p + 8 x (ldrb + muls + add) + add stride, + (cmp + bne) / 2 = 36.5 cycles
 *   = 4.56 cycles/MAC.
 * r0 p (advances), r1 the values (advance by stride), r2-r5 and r8-r11 the sums, r6 p[s], r7 the product,
 * r12 the end of p, lr stride; on the stack: p, out (advances), groups left, bias, v (advances), the sum of
 * the outputs. */
    .macro WPOS K
    ldm r0!, {r6}
    MACK r2, 0
    .if \K >= 2
    MACK r3, 1
    .endif
    .if \K >= 4
    MACK r4, 2
    MACK r5, 3
    .endif
    .if \K >= 8
    MACK r8, 4
    MACK r9, 5
    MACK r10, 6
    MACK r11, 7
    .endif
    add r1, lr
    .endm

    .macro WOUT acc, k, low
    .if \low
    adds r6, \acc, r7
    .else
    mov r6, \acc
    adds r6, r6, r7
    .endif
    asrs r6, r6, #15
    str r6, [r0, #4 * \k]
    adds r1, r1, r6
    .endm

    .macro WSUMK name, K
    .section .time_critical.\name, "ax", %progbits
    .global \name
    .type \name, %function
    .thumb_func
\name:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
    push {r4-r7}
    mov lr, r3              /* stride */
    lsls r2, r2, #2
    adds r2, r0, r2
    mov r12, r2             /* the end of p */
    sub sp, #24
    str r0, [sp, #0]        /* p */
    ldr r4, [sp, #60]
    str r4, [sp, #4]        /* out */
    ldr r4, [sp, #64]
    str r4, [sp, #8]        /* groups left */
    ldr r4, [sp, #68]
    str r4, [sp, #12]       /* bias */
    str r1, [sp, #16]       /* v */
    movs r4, #0
    str r4, [sp, #20]       /* the sum of the outputs */
10:
    ldr r0, [sp, #0]
    ldr r1, [sp, #16]
    ldr r6, [sp, #12]
    mov r2, r6
    .if \K >= 2
    mov r3, r6
    .endif
    .if \K >= 4
    mov r4, r6
    mov r5, r6
    .endif
    .if \K >= 8
    mov r8, r6
    mov r9, r6
    mov r10, r6
    mov r11, r6
    .endif
    mov r7, r12
    subs r7, r7, r0
    lsrs r7, r7, #3         /* carry = n_pos odd */
    bcs 3f
2:  WPOS \K
3:  WPOS \K
    cmp r0, r12
    bne 2b
    ldr r0, [sp, #4]
    ldr r1, [sp, #20]
    movs r7, #1
    lsls r7, r7, #14
    WOUT r2, 0, 1
    .if \K >= 2
    WOUT r3, 1, 1
    .endif
    .if \K >= 4
    WOUT r4, 2, 1
    WOUT r5, 3, 1
    .endif
    .if \K >= 8
    WOUT r8, 4, 0
    WOUT r9, 5, 0
    WOUT r10, 6, 0
    WOUT r11, 7, 0
    .endif
    adds r0, r0, #4 * \K
    str r0, [sp, #4]
    str r1, [sp, #20]
    ldr r1, [sp, #16]
    adds r1, r1, #\K
    str r1, [sp, #16]
    ldr r7, [sp, #8]
    subs r7, r7, #1
    str r7, [sp, #8]
    beq 19f
    b 10b
19:
    ldr r0, [sp, #20]
    add sp, #24
    pop {r4-r7}
    mov r8, r4
    mov r9, r5
    mov r10, r6
    mov r11, r7
    pop {r4-r7, pc}
    .size \name, . - \name
    .endm

    WSUMK sm_wsum8_i8_m0, 8
    WSUMK sm_wsum4x_i8_m0, 4
    WSUMK sm_wsum2_i8_m0, 2
    WSUMK sm_wsum1_i8_m0, 1

/* sm_wsum4_i8_m0(p, v, n_pos, stride, out, n_groups), n_pos >= 1, n_groups >= 1:
 * out[4g + r] = RSHR(sum_s p[s] * v[s * stride + 4g + r], 15) (int8) for g < n_groups, r = 0..3
 * (p int32, v int8): the attention output, the probabilities times the cached
 * values, 4 value columns per probability load.  Unrolled twice (an odd n_pos
 * enters at the second copy):
 *   per 2 positions x 4 columns: 2 x (ldm p + 4 x (ldrsb + muls + add) + add) + cmp + bne
 *   = 41 cycles = 5.125 cycles/MAC.
 * r0 p (advances), r1/r3/r4/r5 the 4 column pointers, r2 the offset s * stride,
 * r12 stride, lr the end of p. */
    .section .time_critical.sm_wsum4_i8_m0, "ax", %progbits
    .global sm_wsum4_i8_m0
    .type sm_wsum4_i8_m0, %function
    .thumb_func
sm_wsum4_i8_m0:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
    push {r4-r7}
    ldr r4, [sp, #36]       /* out */
    ldr r5, [sp, #40]       /* n_groups */
    sub sp, #16
    str r0, [sp, #0]        /* p */
    str r2, [sp, #4]        /* n_pos */
    str r4, [sp, #8]        /* out (advances) */
    str r5, [sp, #12]       /* groups left */
    mov r12, r3             /* stride */
    lsls r2, r2, #2
    adds r2, r0, r2
    mov lr, r2              /* end of p */
1:
    movs r6, #0
    mov r8, r6
    mov r9, r6
    mov r10, r6
    mov r11, r6
    ldr r0, [sp, #0]
    movs r2, #0
    adds r3, r1, #1
    adds r4, r1, #2
    adds r5, r1, #3
    ldr r6, [sp, #4]
    lsrs r6, r6, #1         /* carry = n_pos odd */
    bcs 3f
2:
    ldm r0!, {r6}
    ldrsb r7, [r1, r2]
    muls r7, r6
    add r8, r7
    ldrsb r7, [r3, r2]
    muls r7, r6
    add r9, r7
    ldrsb r7, [r4, r2]
    muls r7, r6
    add r10, r7
    ldrsb r7, [r5, r2]
    muls r7, r6
    add r11, r7
    add r2, r12
3:
    ldm r0!, {r6}
    ldrsb r7, [r1, r2]
    muls r7, r6
    add r8, r7
    ldrsb r7, [r3, r2]
    muls r7, r6
    add r9, r7
    ldrsb r7, [r4, r2]
    muls r7, r6
    add r10, r7
    ldrsb r7, [r5, r2]
    muls r7, r6
    add r11, r7
    add r2, r12
    cmp r0, lr
    bne 2b
    adds r1, r1, #4         /* the next 4 columns */
    ldr r2, [sp, #8]
    movs r7, #1
    lsls r7, r7, #14        /* out = RSHR(sum, 15) as int8 */
    mov r6, r8
    adds r6, r6, r7
    asrs r6, r6, #15
    strb r6, [r2, #0]
    mov r6, r9
    adds r6, r6, r7
    asrs r6, r6, #15
    strb r6, [r2, #1]
    mov r6, r10
    adds r6, r6, r7
    asrs r6, r6, #15
    strb r6, [r2, #2]
    mov r6, r11
    adds r6, r6, r7
    asrs r6, r6, #15
    strb r6, [r2, #3]
    adds r2, r2, #4
    str r2, [sp, #8]
    ldr r7, [sp, #12]
    subs r7, r7, #1
    str r7, [sp, #12]
    bne 1b
    add sp, #16
    pop {r4-r7}
    mov r8, r4
    mov r9, r5
    mov r10, r6
    mov r11, r7
    pop {r4-r7, pc}
    .size sm_wsum4_i8_m0, . - sm_wsum4_i8_m0
