"""deployers"""
