"""collector/prepare"""
