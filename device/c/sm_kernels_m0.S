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
