/* Start-up code for the bare-metal RP2040 image run by harness.mjs.
 *
 * No boot2: the harness sets SP and PC from this vector table (rp2040js maps
 * flash at 0x10000000 without the SSI being configured).  reset_handler copies
 * .data (including the SRAM-resident hot kernels), zeroes .bss, paints the
 * stack with a pattern so the harness can measure its high-water mark, and
 * calls main().  BKPT #0x7f tells the harness the program finished; a fault
 * ends in BKPT #0x7e.
 */
#include <stdint.h>

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end;
extern uint32_t __stack_limit, __stack_top;
int main(void);

#define STACK_PAINT 0x5AFE57ACu

__attribute__((noreturn)) void reset_handler(void);
__attribute__((noreturn)) void fault_handler(void)
{
    for (;;)
        __asm volatile("bkpt #0x7e");
}

__attribute__((section(".vectors"), used)) const void *const vector_table[16] = {
    (const void *)&__stack_top, (const void *)reset_handler, (const void *)fault_handler,
    (const void *)fault_handler, 0, 0, 0, 0, 0, 0, 0, (const void *)fault_handler, 0, 0,
    (const void *)fault_handler, (const void *)fault_handler,
};

void reset_handler(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end)
        *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end; dst++)
        *dst = 0;
    /* Paint the stack below the current frame (the 64 bytes above are in use). */
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (dst = &__stack_limit; dst < sp - 16; dst++)
        *dst = STACK_PAINT;
    main();
    for (;;)
        __asm volatile("bkpt #0x7f");
}
