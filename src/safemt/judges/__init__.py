"""safemt.judges"""
