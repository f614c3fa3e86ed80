/* RP2040 only: unsigned 32-bit division through the SIO hardware divider, as pico-sdk's
 * pico_divider does (the runtime divides a few times per token: RMSNorm's 2^29 / isqrt,
 * the softmax's 2^30 / W).  Link with -Wl,--wrap=__aeabi_uidiv,--wrap=__aeabi_uidivmod.
 * The divider's results are valid 8 cycles after the divisor is written (RP2040
 * datasheet 2.3.1.5); the four branches below wait those 8 cycles.  No interrupt
 * handler of the firmware divides, so its state needs no saving. */
    .syntax unified
    .cpu cortex-m0plus
    .thumb
    .section .time_critical.sm_rp2040_div, "ax", %progbits
    .global __wrap___aeabi_uidiv
    .global __wrap___aeabi_uidivmod
    .type __wrap___aeabi_uidiv, %function
    .type __wrap___aeabi_uidivmod, %function
    .thumb_func
__wrap___aeabi_uidiv:
    .thumb_func
__wrap___aeabi_uidivmod:
    ldr r2, =0xd0000000     /* SIO_BASE */
    str r0, [r2, #0x60]     /* DIV_UDIVIDEND */
    str r1, [r2, #0x64]     /* DIV_UDIVISOR: starts the 8-cycle division */
    b 1f
1:  b 1f
1:  b 1f
1:  b 1f
1:  ldr r1, [r2, #0x74]     /* DIV_REMAINDER */
    ldr r0, [r2, #0x70]     /* DIV_QUOTIENT (read last) */
    bx lr
    .size __wrap___aeabi_uidiv, . - __wrap___aeabi_uidiv
    .ltorg
