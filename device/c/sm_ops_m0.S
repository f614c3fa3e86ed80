/* Cortex-M0+ (ARMv6-M Thumb) per-token operations other than the dot products
 * (sm_kernels_m0.S): the softmax of one attention head, the rotary embedding and RMSNorm's sum of squares.
 * Each has its own symbol, so that the device bench's cycle profile names the phase. */
    .syntax unified
    .cpu cortex-m0plus
    .thumb

/* sm_softmax_m0(sc, n, ms, lut), n >= 1: one head's softmax (FORMAT.md 6.4), in place:
 *     top = max sc;  idx = REQUANT(top - sc[s], ms[0], ms[1]);  w[s] = idx < 1024 ? lut[idx] : 0
 *     W = sum w;  R = 2^30 / W (unsigned);  sc[s] = (w[s] * R) >> 15 (unsigned, w * R <= 2^30);
 *     returns sum_s sc[s]
 * top - sc >= 0, so below 2^16 floor((top - sc) * m / 2^15) is one unsigned multiply
 * ((top - sc) * m < 2^32); from 2^16 on it is REQUANT's two products.
 * About 6 cycles per score for the maximum, 20 for the exponential, 5.5 for the
 * normalisation, plus one division (__aeabi_uidiv: the SIO divider on the RP2040 build). */
    .section .time_critical.sm_softmax_m0, "ax", %progbits
    .global sm_softmax_m0
    .type sm_softmax_m0, %function
    .thumb_func
sm_softmax_m0:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
    push {r4-r7}
    mov r12, r0             /* start */
    lsls r1, r1, #2
    adds r1, r0, r1
    mov r10, r1             /* end */
    ldr r6, [r0, #0]        /* top */
    mov r4, r0
    subs r5, r1, r0
    lsls r5, r5, #29        /* N = n odd: start at sc[1], the rest in pairs */
    bpl 1f
    adds r4, r4, #4
    cmp r4, r1
    beq 3f
1:  ldm r4!, {r5, r7}
    cmp r5, r6
    ble 2f
    mov r6, r5
2:  cmp r7, r6
    ble 4f
    mov r6, r7
4:  cmp r4, r1
    bne 1b
3:  ldr r1, [r2, #0]        /* m */
    ldr r2, [r2, #4]        /* shift */
    movs r5, #1
    lsls r5, r2
    lsrs r5, r5, #1
    mov r9, r5              /* rounding term of RSHR */
    movs r5, #1
    lsls r5, r5, #10
    mov r8, r5              /* 1024 */
    movs r5, #0
    mov r11, r5             /* W */
5:  ldr r5, [r0, #0]
    subs r5, r6, r5         /* d = top - sc */
    lsrs r7, r5, #16
    bne 7f
    muls r5, r1
    lsrs r5, r5, #15
6:  add r5, r9
    lsrs r5, r2             /* idx */
    cmp r5, r8
    bhs 8f
    lsls r5, r5, #1
    ldrh r5, [r3, r5]
    add r11, r5
9:  stm r0!, {r5}
    cmp r0, r10
    bne 5b
    /* R = 2^30 / W, then sc = (w * R) >> 15: n mod 4 singly, then 4 at a time */
    mov r4, r12             /* start (r4-r7 survive the call) */
    mov r5, r10             /* end */
    movs r0, #1
    lsls r0, r0, #30
    mov r1, r11
    bl __aeabi_uidiv        /* r0 = R */
    movs r7, #0             /* the sum of the probabilities (returned) */
    subs r1, r5, r4
    lsls r1, r1, #28
    lsrs r1, r1, #30        /* n mod 4 */
    beq 11f
10: ldr r2, [r4, #0]
    muls r2, r0
    lsrs r2, r2, #15
    adds r7, r7, r2
    stm r4!, {r2}
    subs r1, r1, #1
    bne 10b
11: cmp r4, r5
    beq 13f
12: ldm r4!, {r1, r2, r3, r6}
    muls r1, r0
    lsrs r1, r1, #15
    muls r2, r0
    lsrs r2, r2, #15
    muls r3, r0
    lsrs r3, r3, #15
    muls r6, r0
    lsrs r6, r6, #15
    adds r7, r7, r1
    adds r7, r7, r2
    adds r7, r7, r3
    adds r7, r7, r6
    subs r4, r4, #16
    stm r4!, {r1, r2, r3, r6}
    cmp r4, r5
    bne 12b
13: movs r0, r7
    pop {r4-r7}
    mov r8, r4
    mov r9, r5
    mov r10, r6
    mov r11, r7
    pop {r4-r7, pc}
7:  lsrs r7, r5, #15        /* d >= 2^16: (d >> 15) * m + (((d & 32767) * m) >> 15) */
    muls r7, r1
    lsls r5, r5, #17
    lsrs r5, r5, #17
    muls r5, r1
    lsrs r5, r5, #15
    adds r5, r5, r7
    b 6b
8:  movs r5, #0
    b 9b
    .size sm_softmax_m0, . - sm_softmax_m0

/* sm_rope_m0(v, C, S, half, n_heads), n_heads >= 1: the rotary embedding of n_heads heads of 2 half values
 * each, one after the other in v (FORMAT.md 6.4), in place: for every head and j < half:
 *     (u0, u1) = (v[2j], v[2j+1]);  v[2j]   = clamp(RSHR(u0 * C[j] - u1 * S[j], 14), -127, 127)
 *                                   v[2j+1] = clamp(RSHR(u0 * S[j] + u1 * C[j], 14), -127, 127)
 * v 2-byte aligned (heads start at even offsets: head_dim is even), C and S int16 (the same for every head).
 * About 39 cycles per pair. */
    .section .time_critical.sm_rope_m0, "ax", %progbits
    .global sm_rope_m0
    .type sm_rope_m0, %function
    .thumb_func
sm_rope_m0:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
    push {r4-r7}
    ldr r4, [sp, #36]       /* n_heads (5th argument) */
    mov r11, r4
    lsls r3, r3, #1
    adds r0, r0, r3         /* ends; one index -2 half .. 0 steps all three */
    adds r1, r1, r3
    adds r2, r2, r3
    rsbs r3, r3, #0
    mov r12, r3             /* -2 half: a head's start from its end */
    movs r4, #1
    lsls r4, r4, #13
    mov r8, r4              /* the rounding term 2^13 */
1:  ldrsh r6, [r1, r3]      /* c */
    ldrsh r7, [r2, r3]      /* s */
    ldrh r4, [r0, r3]
    sxtb r5, r4             /* u0 */
    lsls r4, r4, #16
    asrs r4, r4, #24        /* u1 */
    mov r9, r4
    muls r4, r7             /* u1 s */
    mov r10, r5
    muls r5, r6             /* u0 c */
    subs r5, r5, r4         /* a = u0 c - u1 s */
    mov r4, r9
    muls r4, r6             /* u1 c */
    mov r6, r10
    muls r6, r7             /* u0 s */
    adds r4, r4, r6         /* b = u0 s + u1 c */
    add r5, r8
    asrs r5, r5, #14
    add r4, r8
    asrs r4, r4, #14
    movs r6, r5
    adds r6, #127
    cmp r6, #254            /* a + 127 in [0, 254]: no clamp */
    bhi 3f
2:  movs r6, r4
    adds r6, #127
    cmp r6, #254
    bhi 5f
4:  uxtb r5, r5
    lsls r4, r4, #8
    orrs r4, r5
    strh r4, [r0, r3]
    adds r3, r3, #2
    bne 1b
    mov r3, r12
    subs r0, r0, r3         /* the next head's end */
    mov r4, r11
    subs r4, r4, #1
    mov r11, r4
    bne 1b
    pop {r4-r7}
    mov r8, r4
    mov r9, r5
    mov r10, r6
    mov r11, r7
    pop {r4-r7, pc}
3:  movs r5, #127
    cmp r6, #0
    bgt 2b
    negs r5, r5
    b 2b
5:  movs r4, #127
    cmp r6, #0
    bgt 4b
    negs r4, r4
    b 4b
    .size sm_rope_m0, . - sm_rope_m0

/* sm_sumsq_m0(x, n, L), n >= 1: RMSNorm's sum (FORMAT.md 6.2) without eps: sum of (x[c] * x[c]) >> L
 * (|x| <= 32767: the square is below 2^30), n mod 4 singly, then four at a time: 5 cycles per value. */
    .section .time_critical.sm_sumsq_m0, "ax", %progbits
    .global sm_sumsq_m0
    .type sm_sumsq_m0, %function
    .thumb_func
sm_sumsq_m0:
    push {r4-r7, lr}
    movs r3, #0
    lsls r1, r1, #2
    adds r1, r0, r1         /* end */
    subs r4, r1, r0
    lsls r4, r4, #28
    lsrs r4, r4, #30        /* n mod 4 */
    beq 1f
4:  ldm r0!, {r5}
    muls r5, r5
    lsrs r5, r2
    adds r3, r3, r5
    subs r4, r4, #1
    bne 4b
1:  cmp r0, r1
    beq 3f
2:  ldm r0!, {r4-r7}
    muls r4, r4
    lsrs r4, r2
    adds r3, r3, r4
    muls r5, r5
    lsrs r5, r2
    adds r3, r3, r5
    muls r6, r6
    lsrs r6, r2
    adds r3, r3, r6
    muls r7, r7
    lsrs r7, r2
    adds r3, r3, r7
    cmp r0, r1
    bne 2b
3:  movs r0, r3
    pop {r4-r7, pc}
    .size sm_sumsq_m0, . - sm_sumsq_m0

/* sm_widen_i8_m0(x, n, y), n >= 1: y[c] = x[c] (int8 -> int32, for sm_linK_i8), returns sum_c x[c]
 * (their bias); 4 bytes a step from 4 base pointers: 5 cycles per byte. */
    .section .time_critical.sm_widen_i8_m0, "ax", %progbits
    .global sm_widen_i8_m0
    .type sm_widen_i8_m0, %function
    .thumb_func
sm_widen_i8_m0:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    push {r4, r5}
    mov r12, r2             /* y */
    adds r0, r0, r1         /* the end */
    rsbs r1, r1, #0         /* i = -n */
    movs r2, #0
1:  lsls r3, r1, #30        /* one at a time until -i is a multiple of 4 */
    beq 2f
    ldrsb r3, [r0, r1]
    adds r2, r2, r3
    mov r4, r12
    stm r4!, {r3}
    mov r12, r4
    adds r1, r1, #1
    b 1b
2:  cmp r1, #0
    beq 9f
    adds r4, r0, #1
    mov r8, r4
    adds r4, r0, #2
    mov r9, r4
    mov r7, r12
3:  ldrsb r3, [r0, r1]
    mov r4, r8
    ldrsb r4, [r4, r1]
    mov r5, r9
    ldrsb r5, [r5, r1]
    adds r6, r0, #3
    ldrsb r6, [r6, r1]
    adds r2, r2, r3
    adds r2, r2, r4
    adds r2, r2, r5
    adds r2, r2, r6
    stm r7!, {r3-r6}
    adds r1, r1, #4
    bne 3b
9:  movs r0, r2
    pop {r4, r5}
    mov r8, r4
    mov r9, r5
    pop {r4-r7, pc}
    .size sm_widen_i8_m0, . - sm_widen_i8_m0

/* sm_rmsn_m0(x, G, y, n, inv, sh, gs), n >= 1: RMSNorm's scaling (FORMAT.md 6.2) into int32 (weights in SRAM:
 * the activations of sm_linK_i8, widened):
 *     y[c] = clamp(RSHR(RSHR(x[c] * inv, sh) * G[c], gs), -127, 127), returns sum_c y[c] (their bias);
 * 23 cycles per element. */
    .section .time_critical.sm_rmsn_m0, "ax", %progbits
    .global sm_rmsn_m0
    .type sm_rmsn_m0, %function
    .thumb_func
sm_rmsn_m0:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
    push {r4-r7}
    ldr r4, [sp, #36]       /* inv */
    mov r8, r4
    ldr r5, [sp, #40]       /* sh */
    movs r4, #1
    lsls r4, r5
    lsrs r4, r4, #1
    mov r9, r4              /* rnd(sh) */
    ldr r6, [sp, #44]       /* gs */
    movs r4, #1
    lsls r4, r6
    lsrs r4, r4, #1
    mov r10, r4             /* rnd(gs) */
    movs r4, #0
    mov r11, r4             /* the sum */
    lsls r7, r3, #1
    adds r1, r1, r7         /* the end of G */
    rsbs r7, r7, #0         /* -2n .. 0 */
1:  ldm r0!, {r3}
    mov r4, r8
    muls r3, r4
    add r3, r9
    asrs r3, r5
    ldrsh r4, [r1, r7]
    muls r4, r3
    add r4, r10
    asrs r4, r6
    movs r3, r4
    adds r3, #127
    cmp r3, #254            /* v + 127 in [0, 254]: no clamp */
    bhi 5f
2:  add r11, r4
    stm r2!, {r4}
    adds r7, r7, #2
    bne 1b
    mov r0, r11
    pop {r4-r7}
    mov r8, r4
    mov r9, r5
    mov r10, r6
    mov r11, r7
    pop {r4-r7, pc}
5:  movs r4, #127
    cmp r3, #0
    bgt 2b
    negs r4, r4
    b 2b
    .size sm_rmsn_m0, . - sm_rmsn_m0
