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
     * RSHR(v, s) = (v + ((1 << s) >> 1)) >> s.  Uses r4, r5, r7. */
    .macro REQUANT acc
    mov r6, \acc
    ldm r2!, {r4, r5}
    asrs r7, r6, #15
    muls r7, r4
    lsls r6, r6, #17
    lsrs r6, r6, #17
    muls r6, r4
    lsrs r6, r6, #15
    adds r6, r6, r7
    movs r7, #1
    lsls r7, r5
    lsrs r7, r7, #1
    adds r6, r6, r7
    asrs r6, r5
    .endm

    .macro STORE_ACT acc, k, mode   /* out int8 at r3; mode 4: then through the table at [sp, #12] */
    REQUANT \acc
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
    ldr r4, [sp, #12]
    adds r6, #128
    ldrsb r6, [r4, r6]
    .endif
    strb r6, [r3, #\k]
    .endm

    .macro STORE_RES acc, k          /* out int32 at r3 */
    REQUANT \acc
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

    .macro STORE_LOGIT acc, k        /* out int32 at r3 */
    REQUANT \acc
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
